//! `[mqtt]`: the uplink to a broker.

use super::{check_id, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;

/// Broker connection and topic settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (port defaults to 1883), or `mqtts://host:port` for TLS (8883).
    pub broker: String,
    /// TLS settings for an `mqtts://` broker: a custom CA, and a client certificate for mutual TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
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

/// `[mqtt.tls]`: whom to trust and who this device is. Files are PEM and are read again on every
/// connection, so a rotated certificate is picked up without a restart.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates that signed the broker's certificate; the system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This device's certificate chain, for brokers that require client certificates.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&mut PathBuf)) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        use crate::pem;
        if let Some(ca) = &self.ca_file {
            if let Err(e) = pem::read_certificates(ca) {
                errors.push(ConfigError::new(format!("{path}.ca_file"), e.to_string()));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                if let Err(e) = pem::read_certificates(cert) {
                    errors.push(ConfigError::new(format!("{path}.cert_file"), e.to_string()));
                }
                if let Err(e) = pem::read_private_key(key) {
                    errors.push(ConfigError::new(format!("{path}.key_file"), e.to_string()));
                }
            }
            (Some(_), None) => errors.push(ConfigError::new(
                format!("{path}.key_file"),
                "cert_file needs key_file (the certificate's private key)",
            )),
            (None, Some(_)) => errors.push(ConfigError::new(
                format!("{path}.cert_file"),
                "key_file needs cert_file (the certificate it belongs to)",
            )),
            (None, None) => {}
        }
    }
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

/// Host and port of a broker, parsed from `mqtt://host:port` or `mqtts://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Connect with TLS (`mqtts://`, `ssl://`).
    pub tls: bool,
}

impl BrokerAddress {
    /// Parses `mqtt://host[:port]` or `tcp://host[:port]` (plain, port 1883), or
    /// `mqtts://host[:port]` or `ssl://host[:port]` (TLS, port 8883).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, tls) = if let Some(r) = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            (r, false)
        } else if let Some(r) = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
        {
            (r, true)
        } else {
            return Err(format!(
                "\"{url}\": expected mqtt://host:port or mqtts://host:port"
            ));
        };
        let default_port = if tls { 8883 } else { 1883 };
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
            _ => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("\"{url}\": missing host"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

impl MqttConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        match BrokerAddress::parse(&self.broker) {
            Err(e) => errors.push(ConfigError::new(format!("{path}.broker"), e)),
            Ok(address) if !address.tls && self.tls.is_some() => errors.push(ConfigError::new(
                format!("{path}.tls"),
                "TLS settings need an mqtts:// broker URL",
            )),
            Ok(_) => {}
        }
        if let Some(tls) = &self.tls {
            tls.validate(&format!("{path}.tls"), errors);
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
