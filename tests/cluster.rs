//! The daemon and the operator commands on a two-node clustered broker (ejabberd's MQTT service,
//! `scripts/cluster-broker.sh`), with the device on one node and the operator on the other:
//! predictions, the status and last will, signed commands, a model update, `fleet status` and a
//! `fleet rollout` all cross the cluster.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A device of the cluster: `id` on node `node`, replaying at 50 frames/s, trusting `key`.
fn device_config(
    dir: &Path,
    cluster: &Cluster,
    node: usize,
    id: &str,
    key: &ed25519_dalek::SigningKey,
) -> PathBuf {
    let home = dir.join(id);
    std::fs::create_dir_all(&home).unwrap();
    let mut spec = LineConfig::remote(&home, &cluster.url(node), key, 50.0);
    spec.device = id.into();
    spec.device_extra = format!("labels = {{ node = \"n{node}\" }}\n");
    spec.mqtt_extra = Cluster::mqtt_lines();
    spec.remote.as_mut().unwrap().extra =
        "[remote.ota]\ntrial_predictions = 40\ntrial_latency_slack_ms = 2\n".into();
    spec.write(&home.join("edgeinfer.toml"))
}

fn key_file(dir: &Path, key: &ed25519_dalek::SigningKey) -> PathBuf {
    let path = dir.join("operator.key");
    std::fs::write(&path, edgeinfer::manage::auth::signing_key_text(key)).unwrap();
    path
}

fn operator(cluster: &Cluster, node: usize, args: &[&str]) -> std::process::Output {
    let broker = cluster.operator_args(node);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(broker.iter().map(String::as_str));
    edgeinfer(&all)
}

fn version(path: &Path) -> String {
    edgeinfer::model::sha256_file(path).unwrap()[..12].to_string()
}

#[test]
fn predictions_commands_and_a_model_update_cross_from_one_node_to_the_other() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = operator_key();
    let key_file = key_file(dir.path(), &key);
    let config = device_config(dir.path(), &cluster, 0, "t1", &key);
    let peer = Recorder::connect(
        cluster.options(1, "watcher"),
        &["edgeinfer/t1/predictions/+", STATUS],
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);
    peer.wait_json(STATUS, WAIT, |s| s["online"] == true)
        .unwrap_or_else(|| panic!("no online status on the other node\n{}", daemon.log()));

    // Predictions: every one, in order, once.
    let predictions = |peer: &Recorder| -> Vec<u64> {
        peer.json_on("edgeinfer/t1/predictions/serial0")
            .iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            })
            .map(|p| {
                let id = p["id"].as_str().unwrap();
                id.rsplit('-').next().unwrap().parse().unwrap()
            })
            .collect()
    };
    assert!(
        wait_until(WAIT, || predictions(&peer).len() >= 200),
        "{} predictions\n{}",
        predictions(&peer).len(),
        daemon.log()
    );

    // A signed command and a model update from the other node.
    let k = key_file.to_str().unwrap();
    let ping = operator(&cluster, 1, &["cmd", "--device", "t1", "--key", k, "ping"]);
    assert!(ping.status.success(), "{}", text(&ping));
    let answer: Value = serde_json::from_slice(&ping.stdout).unwrap();
    assert_eq!(answer["result"]["pong"], true, "{answer}");
    let v2 = repo("models/test/vibration-v2.onnx");
    let push = operator(
        &cluster,
        1,
        &[
            "ota",
            "push",
            "--device",
            "t1",
            "--key",
            k,
            "--model-id",
            "vibration",
            "--model",
            v2.to_str().unwrap(),
            "--timeout",
            "90s",
        ],
    );
    assert!(push.status.success(), "{}\n{}", text(&push), daemon.log());
    peer.wait_json(STATUS, WAIT, |s| {
        s["models"][0]["version"] == version(&v2).as_str() && s["models"][0]["trial"] == false
    })
    .unwrap_or_else(|| panic!("v2 never committed\n{}", daemon.log()));

    // The fleet view from the other node, although ejabberd does not send a retained message
    // to a subscriber on another node: the devices answer the status request.
    let status = operator(&cluster, 1, &["fleet", "status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let devices: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["device"], "t1");
    assert_eq!(devices[0]["online"], true);
    assert_eq!(devices[0]["labels"]["node"], "n0");
    assert_eq!(devices[0]["models"][0]["version"], version(&v2).as_str());

    // The last will, sent by the device's node, reaches the other one.
    daemon.kill();
    peer.wait_json(STATUS, WAIT, |s| s["online"] == false)
        .expect("the last will crossed the cluster");
    let seqs = predictions(&peer);
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "duplicates across the cluster");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    let (first, last) = (seqs[0], *seqs.last().unwrap());
    assert_eq!((last - first + 1) as usize, seqs.len(), "gaps in {seqs:?}");
}

#[test]
fn a_rollout_from_one_node_reaches_devices_on_both() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = operator_key();
    let key_file = key_file(dir.path(), &key);
    let peer = Recorder::connect(cluster.options(1, "watcher"), &["edgeinfer/+/status"]).unwrap();
    let daemons: Vec<(String, Daemon)> = [("a1", 0), ("b1", 1)]
        .iter()
        .map(|(id, node)| {
            let config = device_config(dir.path(), &cluster, *node, id, &key);
            (id.to_string(), Daemon::start(&config))
        })
        .collect();
    for (id, daemon) in &daemons {
        peer.wait_json(&format!("edgeinfer/{id}/status"), WAIT, |s| {
            s["online"] == true
        })
        .unwrap_or_else(|| panic!("{id} never online\n{}", daemon.log()));
    }
    let v2 = repo("models/test/vibration-v2.onnx");
    let state = dir.path().join("rollout.json");
    let out = operator(
        &cluster,
        0,
        &[
            "fleet",
            "rollout",
            "--key",
            key_file.to_str().unwrap(),
            "--model",
            "vibration",
            "--file",
            v2.to_str().unwrap(),
            "--waves",
            "1,100%",
            "--max-failures",
            "0%",
            "--wait-mins",
            "2",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    let logs: String = daemons
        .iter()
        .map(|(id, d)| format!("--- {id}\n{}", d.log()))
        .collect();
    assert!(out.status.success(), "{}\n{logs}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["committed"], 2, "{report}");
    let waves: Vec<Vec<&str>> = report["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w.as_array()
                .unwrap()
                .iter()
                .map(|d| d["device"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(waves, vec![vec!["a1"], vec!["b1"]]);
}
