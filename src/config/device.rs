//! `[device]`: who this device is, how the fleet tells it apart, and where it keeps state.

use super::{check_id, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most labels a device may have.
pub const MAX_LABELS: usize = 32;

/// Identity and state directory of this device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique id in the fleet; appears in every topic and prediction id.
    pub id: String,
    /// Folder for the outbox and other state (relative paths are relative to the config file).
    pub data_dir: PathBuf,
    /// Log every prediction at INFO (otherwise DEBUG). Handy for demos; noisy on a busy device.
    #[serde(default)]
    pub log_predictions: bool,
    /// Free-form labels (`site = "barn-3"`), published in the retained status, by which fleet
    /// commands select devices.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl DeviceConfig {
    pub(super) fn placeholder() -> Self {
        Self {
            id: String::new(),
            data_dir: PathBuf::new(),
            log_predictions: false,
            labels: BTreeMap::new(),
        }
    }

    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        if self.data_dir.as_os_str().is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.data_dir"),
                "must not be empty",
            ));
        }
        if self.labels.len() > MAX_LABELS {
            errors.push(ConfigError::new(
                format!("{path}.labels"),
                format!(
                    "{} labels; at most {MAX_LABELS} are allowed",
                    self.labels.len()
                ),
            ));
        }
        for (key, value) in &self.labels {
            let at = format!("{path}.labels.{key}");
            if let Err(e) = check_label_key(key) {
                errors.push(ConfigError::new(&at, e));
            }
            if let Err(e) = check_label_value(value) {
                errors.push(ConfigError::new(&at, e));
            }
        }
    }
}

/// Whether `key` can be a label name: 1 to 32 of `A-Z a-z 0-9 _ - .`, starting with a letter.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label name \"{key}\" must be 1 to 32 of A-Z a-z 0-9 _ - . and start with a letter"
        ))
    }
}

/// Whether `value` can be a label value: 1 to 64 of `A-Z a-z 0-9 _ - . : /` (no `,`, `=` or
/// spaces, which selectors use).
pub fn check_label_value(value: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label value \"{value}\" must be 1 to 64 of A-Z a-z 0-9 _ - . : /"
        ))
    }
}
