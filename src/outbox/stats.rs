//! What the outbox reports: its lifetime counters (persisted with the records) and a snapshot of
//! its contents.

use serde::{Deserialize, Serialize};

/// Lifetime counters, persisted with the records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Records stored.
    pub appended: u64,
    /// Records deleted after the broker acknowledged them.
    pub acked: u64,
    /// Records deleted to make room under `when_full = "drop_oldest"`.
    pub dropped_oldest: u64,
    /// Records refused under `when_full = "drop_newest"` (or larger than the whole cap).
    pub dropped_newest: u64,
    /// Records removed or not stored under `when_full = "thin"`.
    pub thinned: u64,
    /// Records deleted undelivered because they were older than `ttl_secs`.
    pub expired: u64,
    /// Records found damaged (checksum mismatch) and removed.
    pub corrupt: u64,
    /// Records removed because they can never be delivered (larger than the MQTT packet limit).
    pub undeliverable: u64,
    /// Records deleted by `edgeinfer outbox purge`.
    pub purged: u64,
    /// Predictions lost because the store could not be written (disk full, I/O error).
    pub write_errors: u64,
    /// Generations or state files that could not be opened and were moved to `quarantine/`.
    pub quarantined: u64,
}

/// Current contents and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Records waiting for delivery.
    pub records: u64,
    /// Their bytes (keys + stored values), the figure `max_bytes` caps.
    pub bytes: u64,
    /// The cap.
    pub max_bytes: u64,
    /// Bytes of the generations' files on disk.
    pub disk_bytes: u64,
    /// Open generations.
    pub generations: u64,
    /// Age of the oldest waiting record, in seconds.
    pub oldest_age_secs: Option<u64>,
    /// Thinning stride in effect (1: not thinning).
    pub thin_stride: u64,
    /// Whether writes are failing right now.
    pub write_failing: bool,
    /// Lifetime counters.
    pub counters: Counters,
}
