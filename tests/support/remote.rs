//! Remote management as every remote test sets it up: a broker, an operator key (also written as
//! a key file for the operator commands), a device config with `[remote]`, and an operator peer
//! subscribed to what the test watches. [`RemoteRig`] stops there, for tests that start the daemon
//! themselves; [`RemoteDevice`] also starts it and waits until it says it is online.

use super::broker::Broker;
use super::config::LineConfig;
use super::daemon::Daemon;
use super::recorder::{plain_options, Recorder};
use std::path::PathBuf;
use std::time::Duration;

/// The device's retained status topic.
pub const STATUS: &str = "edgeinfer/t1/status";

/// How long a command's result may take.
const ANSWER: Duration = Duration::from_secs(60);

/// An operator key pair for signing commands in tests.
pub fn operator_key() -> ed25519_dalek::SigningKey {
    edgeinfer::manage::auth::generate_key().unwrap()
}

/// A command sequence number above every earlier one (microseconds since the epoch).
pub fn seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A signed command envelope for `device`, valid for a minute from now, as JSON bytes.
pub fn signed_command(
    key: &ed25519_dalek::SigningKey,
    device: &str,
    name: &str,
    seq: u64,
    args: serde_json::Value,
) -> (String, Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let command = edgeinfer::manage::auth::Command {
        id: format!("test-{name}-{seq}"),
        device: device.to_string(),
        command: name.to_string(),
        issued_at: now,
        expires_at: now + 60,
        seq,
        args,
    };
    let envelope = edgeinfer::manage::auth::Envelope::sign(&command, key);
    (command.id, serde_json::to_vec(&envelope).unwrap())
}

/// Everything of a managed device but the daemon. Fields drop in order: the peer before the
/// broker, the folder last.
pub struct RemoteRig {
    pub peer: Recorder,
    pub broker: Broker,
    pub key: ed25519_dalek::SigningKey,
    /// `key` as the operator commands read it (`--key`).
    pub key_file: PathBuf,
    /// Device `t1`: one looping line-replay sensor (see [`LineConfig::remote`]), written from
    /// `spec`.
    pub config: PathBuf,
    pub spec: LineConfig,
    pub dir: tempfile::TempDir,
}

impl RemoteRig {
    /// The device replays at `rate` frames/s with `extra` inside `[remote]`; the operator peer
    /// connects as `peer_id` and subscribes to `filters`.
    pub fn prepare(peer_id: &str, filters: &[&str], rate: f64, extra: &str) -> RemoteRig {
        let broker = Broker::start();
        let dir = tempfile::tempdir().unwrap();
        let key = operator_key();
        let key_file = dir.path().join("operator.key");
        std::fs::write(&key_file, edgeinfer::manage::auth::signing_key_text(&key)).unwrap();
        let mut spec = LineConfig::remote(dir.path(), &broker.url(), &key, rate);
        spec.remote.as_mut().unwrap().extra = extra.into();
        let config = spec.write(&dir.path().join("edgeinfer.toml"));
        let peer = Recorder::connect(plain_options(broker.port, peer_id), filters).unwrap();
        RemoteRig {
            peer,
            broker,
            key,
            key_file,
            config,
            spec,
            dir,
        }
    }

    /// Sends command `name` signed by the operator key to device `t1` and returns its result
    /// (the peer must subscribe to `edgeinfer/t1/cmd/+/result`).
    pub fn command(&self, name: &str, args: serde_json::Value) -> serde_json::Value {
        let (id, body) = signed_command(&self.key, "t1", name, seq(), args);
        let topic = format!("edgeinfer/t1/cmd/{name}/result");
        self.peer.publish(&format!("edgeinfer/t1/cmd/{name}"), body);
        self.peer
            .wait_json(&topic, ANSWER, |v| v["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no result of {name}"))
    }
}

/// A managed device whose daemon runs and has said it is online. Fields drop in order: the
/// daemon and the peer before the broker, the folder last.
pub struct RemoteDevice {
    pub daemon: Daemon,
    pub peer: Recorder,
    pub broker: Broker,
    pub key: ed25519_dalek::SigningKey,
    pub config: PathBuf,
    /// What `config` was written from.
    pub spec: LineConfig,
    /// The retained status that said the device is online.
    pub online: serde_json::Value,
    pub dir: tempfile::TempDir,
}

impl RemoteDevice {
    /// The device replays 20 frames/s; the operator peer connects as `peer_id` and subscribes to
    /// `filters` and [`STATUS`].
    pub fn start(peer_id: &str, filters: &[&str]) -> RemoteDevice {
        let mut subscriptions = filters.to_vec();
        subscriptions.push(STATUS);
        let rig = RemoteRig::prepare(peer_id, &subscriptions, 20.0, "");
        let daemon = Daemon::start(&rig.config);
        let online = rig
            .peer
            .wait_json(STATUS, Duration::from_secs(30), |v| v["online"] == true)
            .unwrap_or_else(|| panic!("the device never said it is online:\n{}", daemon.log()));
        RemoteDevice {
            daemon,
            peer: rig.peer,
            broker: rig.broker,
            key: rig.key,
            config: rig.config,
            spec: rig.spec,
            online,
            dir: rig.dir,
        }
    }
}
