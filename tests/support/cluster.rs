//! A two-node clustered broker of the test's own: ejabberd's MQTT service on two Erlang nodes
//! joined into one cluster (`scripts/cluster-broker.sh`), each node on a free loopback port.
//! ejabberd takes no connection without a user name and password; any pair is accepted.

use super::wait::{free_port, repo};
use std::process::Command;

/// User name every client of the cluster sends.
pub const CLUSTER_USER: &str = "edgeinfer";
/// Password every client of the cluster sends.
pub const CLUSTER_PASSWORD: &str = "cluster";

/// A running two-node cluster, stopped on drop.
pub struct Cluster {
    pub ports: [u16; 2],
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = [free_port(), free_port()];
        let out = script(&[
            "start",
            dir.path().to_str().unwrap(),
            &ports[0].to_string(),
            &ports[1].to_string(),
        ]);
        assert!(
            out.status.success(),
            "the cluster did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster { ports, dir }
    }

    /// URL of node `n` (0 or 1).
    pub fn url(&self, n: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.ports[n])
    }

    /// Options of a test client of node `n`, with the cluster's credentials.
    pub fn options(&self, n: usize, client_id: &str) -> rumqttc::MqttOptions {
        let mut opts = super::recorder::plain_options(self.ports[n], client_id);
        opts.set_credentials(CLUSTER_USER, CLUSTER_PASSWORD);
        opts
    }

    /// Lines inside `[mqtt]` for a device of the cluster.
    pub fn mqtt_lines() -> String {
        format!("username = \"{CLUSTER_USER}\"\npassword = \"{CLUSTER_PASSWORD}\"\n")
    }

    /// The broker options of the operator commands for node `n`.
    pub fn operator_args(&self, n: usize) -> Vec<String> {
        [
            "--broker",
            &self.url(n),
            "--username",
            CLUSTER_USER,
            "--password",
            CLUSTER_PASSWORD,
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = script(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

fn script(args: &[&str]) -> std::process::Output {
    Command::new(repo("scripts/cluster-broker.sh"))
        .args(args)
        .output()
        .unwrap()
}
