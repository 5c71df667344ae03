//! `[device]`: who this device is and where it keeps state.

use super::{check_id, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;

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
}

impl DeviceConfig {
    pub(super) fn placeholder() -> Self {
        Self {
            id: String::new(),
            data_dir: PathBuf::new(),
            log_predictions: false,
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
    }
}
