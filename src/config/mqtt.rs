//! `[mqtt]`: the uplink to a broker.

use super::{check_id, ConfigError};
use serde::Deserialize;

/// Broker connection and topic settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (port defaults to 1883).
    pub broker: String,
    /// MQTT client id; defaults to the device id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Broker user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Broker password (needs `username`).
    #[serde(default)]
    pub password: Option<String>,
    /// First level of every topic.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// MQTT keep-alive interval.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Publishes awaiting PUBACK at once.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// Largest MQTT packet sent or received. A prediction that does not fit is logged, counted as
    /// undeliverable and removed, so that it cannot block the ones behind it. Brokers have their
    /// own limit (mosquitto: `message_size_limit`); keep this at or below it.
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// First reconnect delay; doubles on each failure up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Most predictions of one sensor sent in one MQTT message (as a JSON array) when several are
    /// waiting, as after an outage; 1 sends each on its own. A single waiting prediction is always
    /// sent alone, as an object.
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// Share of each round of publishes given to predictions made since the connection started,
    /// while a backlog from before it drains (0: strictly oldest first; 1: live first).
    #[serde(default = "default_live_share")]
    pub live_share: f64,
}

fn default_prefix() -> String {
    "edgeinfer".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_max_inflight() -> u16 {
    32
}
fn default_max_packet() -> usize {
    256 * 1024
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_batch_records() -> usize {
    16
}
fn default_live_share() -> f64 {
    0.5
}

/// Host and port of a broker, parsed from `mqtt://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddress {
    /// Parses `mqtt://host[:port]` or `tcp://host[:port]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| format!("\"{url}\": expected mqtt://host:port"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(format!(
                "\"{url}\": expected mqtt://host:port without path or credentials (use username/password)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("\"{url}\": bad port \"{p}\""))?;
                (h, port)
            }
            _ => (rest, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("\"{url}\": missing host"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl MqttConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if let Err(e) = BrokerAddress::parse(&self.broker) {
            errors.push(ConfigError::new(format!("{path}.broker"), e));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                errors.push(ConfigError::new(
                    format!("{path}.client_id"),
                    "must be 1-128 characters",
                ));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            errors.push(ConfigError::new(
                format!("{path}.password"),
                "a password needs a username",
            ));
        }
        check_id(&self.topic_prefix, &format!("{path}.topic_prefix"), errors);
        if self.keep_alive_secs < 5 {
            errors.push(ConfigError::new(
                format!("{path}.keep_alive_secs"),
                "must be at least 5",
            ));
        }
        if self.max_inflight == 0 {
            errors.push(ConfigError::new(
                format!("{path}.max_inflight"),
                "must be at least 1",
            ));
        }
        if self.max_packet_bytes < 512 || self.max_packet_bytes > 256 * 1024 * 1024 {
            errors.push(ConfigError::new(
                format!("{path}.max_packet_bytes"),
                "must be 512 bytes to 256 MiB",
            ));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            errors.push(ConfigError::new(
                format!("{path}.reconnect_min_ms"),
                "must be at least 1 and not more than reconnect_max_ms",
            ));
        }
        if !(1..=1000).contains(&self.batch_records) {
            errors.push(ConfigError::new(
                format!("{path}.batch_records"),
                "must be 1 to 1000",
            ));
        }
        if !(0.0..=1.0).contains(&self.live_share) {
            errors.push(ConfigError::new(
                format!("{path}.live_share"),
                "must be between 0 and 1",
            ));
        }
    }
}
