//! A device under remote management, set up the way every remote test needs it: a broker, an
//! operator key, the daemon on a config with `[remote]` (one line-replay sensor at 20 readings/s),
//! and an operator peer, returned once the device has said it is online.

use super::{operator_key, plain_options, remote_config, Broker, Daemon, Peer};
use std::path::PathBuf;
use std::time::Duration;

/// The device's retained status topic.
pub const STATUS: &str = "edgeinfer/t1/status";

/// Fields drop in order: the daemon and the peer before the broker, the folder last.
pub struct RemoteDevice {
    pub daemon: Daemon,
    pub peer: Peer,
    pub broker: Broker,
    pub key: ed25519_dalek::SigningKey,
    pub config: PathBuf,
    /// The retained status that said the device is online.
    pub online: serde_json::Value,
    pub dir: tempfile::TempDir,
}

impl RemoteDevice {
    /// The operator peer connects as `peer_id` and subscribes to `filters` and [`STATUS`].
    pub fn start(peer_id: &str, filters: &[&str]) -> RemoteDevice {
        let broker = Broker::start();
        let dir = tempfile::tempdir().unwrap();
        let key = operator_key();
        let config = remote_config(dir.path(), &broker.url(), &key, 20.0, "");
        let daemon = Daemon::start(&config);
        let mut subscriptions = filters.to_vec();
        subscriptions.push(STATUS);
        let peer = Peer::connect(plain_options(broker.port, peer_id), &subscriptions).unwrap();
        let online = peer
            .wait_json(STATUS, Duration::from_secs(30), |v| v["online"] == true)
            .unwrap_or_else(|| panic!("the device never said it is online:\n{}", daemon.log()));
        RemoteDevice {
            daemon,
            peer,
            broker,
            key,
            config,
            online,
            dir,
        }
    }
}
