//! The test harness, in layers: [`wait`] (paths, ports, polling, signals), [`broker`] (mosquitto of
//! the test's own, plain or TLS, with [`pki`]), [`recorder`] (a real MQTT client that records and
//! publishes), [`daemon`] (the daemon as a child process), [`config`] (configs, typed where
//! tests vary them), [`metrics`] (counters from `/metrics`), [`remote`] (a managed device and its
//! operator), and the special rigs [`netns`] (a broker behind a faulty link) and
//! [`service_manager`] (a systemd notify socket).

pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod netns;
pub mod pki;
pub mod recorder;
pub mod remote;
pub mod service_manager;
pub mod wait;

pub use broker::{Broker, TlsBroker};
pub use cli::{edgeinfer, text};
pub use cluster::Cluster;
pub use config::*;
pub use daemon::*;
pub use metrics::*;
pub use pki::Pki;
pub use recorder::*;
pub use remote::{operator_key, seq, signed_command, RemoteDevice, RemoteRig, STATUS};
pub use wait::*;
