//! What the operator tools (`edgeinfer cmd`, `edgeinfer ota`) share: broker settings and signing.

use crate::config::{BrokerAddress, MqttConfig, TlsConfig};
use crate::manage::auth::{Command, Envelope};
use clap::Args;
use ed25519_dalek::SigningKey;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Largest MQTT packet the operator tools send or accept.
pub(super) const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;

/// Broker connection settings of the operator tools.
#[derive(Args, Clone)]
pub(super) struct BrokerArgs {
    /// `mqtt://host:port` or `mqtts://host:port`.
    #[arg(long)]
    broker: String,
    /// First level of every topic.
    #[arg(long, default_value = "edgeinfer")]
    prefix: String,
    /// CA certificate (PEM) of an mqtts:// broker; the system's roots otherwise.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), for brokers that require one.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Broker user name.
    #[arg(long)]
    username: Option<String>,
    /// Broker password.
    #[arg(long, requires = "username")]
    password: Option<String>,
}

impl BrokerArgs {
    /// The settings as an `[mqtt]` section, so that the daemon's option building is reused.
    pub(super) fn mqtt_config(&self) -> Result<(MqttConfig, BrokerAddress), String> {
        let address = BrokerAddress::parse(&self.broker)?;
        let tls = (self.ca.is_some() || self.client_cert.is_some()).then(|| TlsConfig {
            ca_file: self.ca.clone(),
            cert_file: self.client_cert.clone(),
            key_file: self.client_key.clone(),
        });
        let text = format!(
            "broker = {:?}\ntopic_prefix = {:?}\nmax_packet_bytes = {}\n",
            self.broker, self.prefix, MAX_PACKET_BYTES
        );
        let mut config: MqttConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.tls = tls;
        config.username = self.username.clone();
        config.password = self.password.clone();
        Ok((config, address))
    }
}

/// Time since the Unix epoch.
pub(super) fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Command `name` for `device` with `args`, valid for `ttl_secs` from now, signed with `key`.
///
/// Its sequence number is the time in microseconds since the epoch: increasing for one operator
/// without keeping state, and new on every call, so a command signed again is never a replay.
/// The correlation id is `{id_prefix}-{pid}-{seq}`.
pub(super) fn sign(
    key: &SigningKey,
    device: &str,
    name: &str,
    id_prefix: &str,
    ttl_secs: u64,
    args: serde_json::Value,
) -> (Command, Envelope) {
    let now = since_epoch();
    let seq = now.as_micros() as u64;
    let command = Command {
        id: format!("{id_prefix}-{}-{seq}", std::process::id()),
        device: device.to_string(),
        command: name.to_string(),
        issued_at: now.as_secs(),
        expires_at: now.as_secs() + ttl_secs,
        seq,
        args,
    };
    let envelope = Envelope::sign(&command, key);
    (command, envelope)
}
