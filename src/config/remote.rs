//! `[remote]`: management over MQTT — status, telemetry and commands signed by operators.

use super::ConfigError;
use serde::Deserialize;

/// Remote management settings. The section is optional; it needs `[mqtt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// ed25519 public keys (base64, as `edgeinfer keygen` prints them) of the operators whose
    /// signed commands this device obeys. Without any, commands are refused; status and
    /// telemetry are still published.
    #[serde(default)]
    pub operator_keys: Vec<String>,
    /// How often telemetry is published.
    #[serde(default = "default_telemetry_interval")]
    pub telemetry_interval_secs: u64,
    /// Longest validity a command may claim (`expires_at - issued_at`): a stolen command is
    /// useless after at most this long.
    #[serde(default = "default_max_command_lifetime")]
    pub max_command_lifetime_secs: u64,
    /// How far in the future a command's `issued_at` may be (clocks differ).
    #[serde(default = "default_clock_skew")]
    pub clock_skew_secs: u64,
    /// Largest command payload handled; larger ones are answered with an error.
    #[serde(default = "default_max_command_bytes")]
    pub max_command_bytes: usize,
    /// Largest message the management connection reads. Anything larger breaks the connection
    /// (MQTT cannot skip a packet), so keep the broker's `message_size_limit` at or below it.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Model updates over the air.
    #[serde(default)]
    pub ota: OtaConfig,
}

/// `[remote.ota]`: model updates over MQTT.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtaConfig {
    /// Accept model transfers at all.
    pub enabled: bool,
    /// Largest model file accepted.
    pub max_model_bytes: u64,
    /// A new version is committed after serving this many predictions without a failure.
    pub trial_predictions: u32,
    /// ... and with its median latency within `previous median × trial_latency_ratio +
    /// trial_latency_slack_ms`; otherwise the previous version serves again.
    pub trial_latency_ratio: f64,
    /// See `trial_latency_ratio`.
    pub trial_latency_slack_ms: u64,
}

impl Default for OtaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_model_bytes: 512 * 1024 * 1024,
            trial_predictions: 100,
            trial_latency_ratio: 1.5,
            trial_latency_slack_ms: 5,
        }
    }
}

impl OtaConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self.max_model_bytes == 0 {
            errors.push(ConfigError::new(
                format!("{path}.max_model_bytes"),
                "must be above 0",
            ));
        }
        if !(1..=1_000_000).contains(&self.trial_predictions) {
            errors.push(ConfigError::new(
                format!("{path}.trial_predictions"),
                "must be 1 to 1000000",
            ));
        }
        if !(self.trial_latency_ratio.is_finite() && self.trial_latency_ratio >= 1.0) {
            errors.push(ConfigError::new(
                format!("{path}.trial_latency_ratio"),
                "must be a number ≥ 1",
            ));
        }
        if self.trial_latency_slack_ms > 60_000 {
            errors.push(ConfigError::new(
                format!("{path}.trial_latency_slack_ms"),
                "must be at most 60000",
            ));
        }
    }
}

fn default_telemetry_interval() -> u64 {
    30
}
fn default_max_command_lifetime() -> u64 {
    600
}
fn default_clock_skew() -> u64 {
    60
}
fn default_max_command_bytes() -> usize {
    256 * 1024
}
fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

impl RemoteConfig {
    /// The operator keys that decode; `validate` reports the others.
    pub fn verifying_keys(&self) -> Vec<ed25519_dalek::VerifyingKey> {
        self.operator_keys
            .iter()
            .filter_map(|k| decode_public_key(k).ok())
            .collect()
    }

    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        for (i, key) in self.operator_keys.iter().enumerate() {
            if let Err(e) = decode_public_key(key) {
                errors.push(ConfigError::new(format!("{path}.operator_keys[{i}]"), e));
            }
        }
        if !(1..=86_400).contains(&self.telemetry_interval_secs) {
            errors.push(ConfigError::new(
                format!("{path}.telemetry_interval_secs"),
                "must be 1 to 86400",
            ));
        }
        if !(1..=30 * 86_400).contains(&self.max_command_lifetime_secs) {
            errors.push(ConfigError::new(
                format!("{path}.max_command_lifetime_secs"),
                "must be 1 to 2592000 (30 days)",
            ));
        }
        if self.clock_skew_secs > 3600 {
            errors.push(ConfigError::new(
                format!("{path}.clock_skew_secs"),
                "must be at most 3600",
            ));
        }
        if !(1024..=self.max_message_bytes).contains(&self.max_command_bytes) {
            errors.push(ConfigError::new(
                format!("{path}.max_command_bytes"),
                "must be at least 1024 and at most max_message_bytes",
            ));
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.max_message_bytes) {
            errors.push(ConfigError::new(
                format!("{path}.max_message_bytes"),
                "must be 1 KiB to 256 MiB",
            ));
        }
        self.ota.validate(&format!("{path}.ota"), errors);
    }
}

/// An ed25519 public key from its base64 form.
pub fn decode_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("\"{text}\" is not base64: {e}"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        format!("an ed25519 public key is 32 bytes, this one is {}", b.len())
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("not a valid ed25519 public key: {e}"))
}
