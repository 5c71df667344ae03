//! `[homeassistant]`: MQTT discovery for Home Assistant.

use super::ConfigError;
use serde::Deserialize;

/// Home Assistant discovery settings. The section is optional and discovery is off unless
/// `enabled`; it needs `[mqtt]`, and `[remote]` for the availability of the entities.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    /// Publish discovery configs and per-sensor states.
    pub enabled: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    pub discovery_prefix: String,
    /// Least time between two states of one sensor: a state is published only when it changed,
    /// and at most this often, so that Home Assistant's recorder does not write every frame.
    pub state_interval_ms: u64,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
            state_interval_ms: 1000,
        }
    }
}

impl HomeAssistantConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let prefix = &self.discovery_prefix;
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains(['+', '#', '\0'])
        {
            errors.push(ConfigError::new(
                format!("{path}.discovery_prefix"),
                format!("\"{prefix}\" is not a topic prefix: non-empty, no + or #, no leading or trailing /"),
            ));
        }
        if !(100..=3_600_000).contains(&self.state_interval_ms) {
            errors.push(ConfigError::new(
                format!("{path}.state_interval_ms"),
                "must be 100 to 3600000",
            ));
        }
    }
}

/// `id` as one level of a discovery topic and part of a unique id: Home Assistant allows only
/// `[a-zA-Z0-9_-]` there, so the dots that our ids may hold become `_`.
pub fn discovery_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
