//! `[outbox]`: the durable buffer between inference and the uplink.

use super::ConfigError;
use serde::Deserialize;

/// Limits of the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Cap on the stored records' bytes (keys + values). 64 MiB by default: days of predictions at a few
    /// per second, small beside a Pi's SD card.
    pub max_bytes: u64,
    /// What to drop when a new record would pass `max_bytes`.
    pub when_full: WhenFull,
    /// sled page cache; sled's own default (1 GiB) is far too much for a small board.
    pub cache_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            when_full: WhenFull::DropOldest,
            cache_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Policy when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Delete the oldest records until the new one fits (recent data matters most).
    DropOldest,
    /// Refuse the new record (the start of an outage is kept).
    DropNewest,
}

/// Smallest cap that still holds a few records.
const MIN_MAX_BYTES: u64 = 4 * 1024;

impl OutboxConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self.max_bytes < MIN_MAX_BYTES {
            errors.push(ConfigError::new(
                format!("{path}.max_bytes"),
                format!("must be at least {MIN_MAX_BYTES} bytes"),
            ));
        }
        if self.cache_bytes < 64 * 1024 {
            errors.push(ConfigError::new(
                format!("{path}.cache_bytes"),
                "must be at least 65536 bytes",
            ));
        }
    }
}
