//! `[outbox]`: the durable buffer between inference and the uplink.

use super::ConfigError;
use serde::Deserialize;

/// Durability, limits and layout of the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// When a stored prediction reaches the disk.
    pub durability: Durability,
    /// With `durability = "batch"`: the longest a stored prediction waits for its fsync, and so the
    /// most a power failure can lose.
    pub flush_interval_ms: u64,
    /// Cap on the stored records' bytes (keys + values, before compression). 64 MiB by default: days
    /// of predictions at a few per second, small beside a Pi's SD card. The directory on disk never
    /// exceeds 2× this: past that the oldest generation is dropped whole.
    pub max_bytes: u64,
    /// Records older than this many seconds are deleted undelivered (counted as `expired`);
    /// 0 keeps them until delivered or pushed out by the cap.
    pub ttl_secs: u64,
    /// What to drop when a new record would pass `max_bytes`.
    pub when_full: WhenFull,
    /// With `when_full = "thin"`: each thinning pass keeps every k-th record of each sensor.
    pub thin_factor: u64,
    /// Records are written to one generation (a sled database of its own) until this many bytes of
    /// records were written to it or its files reach this size; then a new one starts, and a
    /// generation is deleted whole once drained. This is what bounds the directory: sled reclaims
    /// the space of deleted records only partly. Default: an eighth of `max_bytes` (only the
    /// generations in use are open, so many small ones cost no memory, and a generation dropped at
    /// the directory bound loses less).
    pub rotate_bytes: Option<u64>,
    /// sled page cache of the whole outbox, split among the open generations (half for the newest,
    /// a quarter each for at most two older ones); sled's own default (1 GiB per database) is far
    /// too much for a small board.
    pub cache_bytes: u64,
    /// Compress what sled writes (zstd): JSON predictions take a fraction of the disk. Applies to
    /// generations started from now on; existing ones keep the setting they were created with.
    pub compression: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Batch,
            flush_interval_ms: 200,
            max_bytes: 64 * 1024 * 1024,
            ttl_secs: 0,
            when_full: WhenFull::DropOldest,
            thin_factor: 2,
            rotate_bytes: None,
            cache_bytes: 4 * 1024 * 1024,
            compression: true,
        }
    }
}

impl OutboxConfig {
    /// The generation size limit in effect.
    pub fn rotate_bytes(&self) -> u64 {
        self.rotate_bytes
            .unwrap_or(self.max_bytes / 8)
            .max(MIN_ROTATE_BYTES)
    }
}

/// When a stored record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Records are fsynced together at most `flush_interval_ms` after they were stored: a power
    /// failure can lose that window, a crash of the daemon alone loses nothing already written.
    Batch,
    /// Every record is fsynced before the next one is stored: nothing acknowledged is ever lost, at
    /// the cost of one fsync per prediction (slow on SD cards, and wears them).
    EveryRecord,
}

/// Policy when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Delete the oldest records until the new one fits (recent data matters most).
    DropOldest,
    /// Refuse the new record (the start of an outage is kept).
    DropNewest,
    /// Keep every k-th record of each sensor over the whole backlog, oldest first, and store only
    /// every k-th new one, so that a long outage leaves an even sample of the whole period.
    Thin,
}

/// Smallest cap that still holds a few records.
const MIN_MAX_BYTES: u64 = 4 * 1024;
/// Smallest generation.
const MIN_ROTATE_BYTES: u64 = 256 * 1024;

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
        if !(1..=60_000).contains(&self.flush_interval_ms) {
            errors.push(ConfigError::new(
                format!("{path}.flush_interval_ms"),
                "must be between 1 and 60000",
            ));
        }
        if !(2..=1000).contains(&self.thin_factor) {
            errors.push(ConfigError::new(
                format!("{path}.thin_factor"),
                "must be between 2 and 1000",
            ));
        }
        if let Some(r) = self.rotate_bytes {
            if r < MIN_ROTATE_BYTES {
                errors.push(ConfigError::new(
                    format!("{path}.rotate_bytes"),
                    format!("must be at least {MIN_ROTATE_BYTES} bytes"),
                ));
            }
        }
    }
}
