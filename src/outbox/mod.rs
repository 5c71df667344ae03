//! The outbox: every prediction is stored here before it is published and deleted only after the
//! broker acknowledged it (PUBACK). It, not the MQTT client's memory, is the source of truth for what
//! is still undelivered; after any reconnect or restart everything in it is sent again, oldest first.
//!
//! Records are keyed by a sequence number from sled's `generate_id` (monotonic across restarts and
//! crashes), big-endian so that key order is age order. Appends are serialized under one lock so that
//! keys become visible in sequence order: the uplink's cursor can never skip a record.

mod envelope;

use crate::config::{OutboxConfig, WhenFull};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tracing::{error, warn};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened.
    #[error("cannot open outbox at {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    /// A read or write failed.
    #[error("outbox {op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
}

fn io(op: &'static str) -> impl FnOnce(sled::Error) -> OutboxError {
    move |source| OutboxError::Io { op, source }
}

/// Lifetime counters, persisted with the records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records stored.
    pub appended: u64,
    /// Records deleted after the broker acknowledged them.
    pub acked: u64,
    /// Records deleted to make room under `when_full = "drop_oldest"`.
    pub dropped_oldest: u64,
    /// Records refused under `when_full = "drop_newest"` (or larger than the whole cap).
    pub dropped_newest: u64,
    /// Records found damaged (checksum mismatch) and removed.
    pub corrupt: u64,
    /// Records removed because they can never be delivered (larger than the MQTT packet limit).
    #[serde(default)]
    pub undeliverable: u64,
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
    /// Lifetime counters.
    pub counters: Counters,
}

/// A stored record, as read back for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Outbox sequence number (its key).
    pub seq: u64,
    /// Sensor id, which picks the topic.
    pub sensor: String,
    /// The JSON prediction.
    pub payload: Vec<u8>,
}

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored durably under `seq`.
    Stored {
        /// Sequence number (and key).
        seq: u64,
        /// Bytes of the JSON payload.
        payload_len: usize,
    },
    /// Refused because the outbox is full and the policy is `drop_newest`.
    Rejected,
}

/// The durable outbox.
pub struct Outbox {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    state: Mutex<State>,
    max_bytes: u64,
    when_full: WhenFull,
    notify: Arc<Notify>,
}

struct State {
    bytes: u64,
    records: u64,
    counters: Counters,
}

const COUNTERS_KEY: &[u8] = b"counters";

impl Outbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(dir: &Path, config: &OutboxConfig) -> Result<Self, OutboxError> {
        let open_err = |source| OutboxError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(Some(500))
            .open()
            .map_err(open_err)?;
        let records = db.open_tree("records").map_err(open_err)?;
        let meta = db.open_tree("meta").map_err(open_err)?;
        let counters = meta
            .get(COUNTERS_KEY)
            .map_err(open_err)?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        let (mut bytes, mut count) = (0u64, 0u64);
        for item in records.iter() {
            let (k, v) = item.map_err(open_err)?;
            bytes += (k.len() + v.len()) as u64;
            count += 1;
        }
        Ok(Self {
            db,
            records,
            meta,
            state: Mutex::new(State {
                bytes,
                records: count,
                counters,
            }),
            max_bytes: config.max_bytes,
            when_full: config.when_full,
            notify: Arc::new(Notify::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Woken after every append, for the uplink.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Stores a record built by `make` from its sequence number, applying the cap; returns once the
    /// record is on disk (sled flushed), which is the durability point.
    pub fn append(
        &self,
        sensor: &str,
        make: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Appended, OutboxError> {
        let mut state = self.lock();
        let seq = self.db.generate_id().map_err(io("generate id"))?;
        let payload = make(seq);
        let value = envelope::encode(sensor, &payload);
        let size = (8 + value.len()) as u64;
        if state.bytes + size > self.max_bytes {
            if self.when_full == WhenFull::DropNewest || size > self.max_bytes {
                state.counters.dropped_newest += 1;
                self.save_counters(&state.counters)?;
                if state.counters.dropped_newest.is_power_of_two() {
                    warn!(
                        dropped = state.counters.dropped_newest,
                        max_bytes = self.max_bytes,
                        "Outbox full: new predictions are being dropped"
                    );
                }
                return Ok(Appended::Rejected);
            }
            while state.bytes + size > self.max_bytes {
                let Some((k, v)) = self.records.pop_min().map_err(io("drop oldest"))? else {
                    break;
                };
                state.bytes = state.bytes.saturating_sub((k.len() + v.len()) as u64);
                state.records = state.records.saturating_sub(1);
                state.counters.dropped_oldest += 1;
                if state.counters.dropped_oldest.is_power_of_two() {
                    warn!(
                        dropped = state.counters.dropped_oldest,
                        max_bytes = self.max_bytes,
                        "Outbox full: oldest predictions are being dropped"
                    );
                }
            }
        }
        self.records
            .insert(seq.to_be_bytes(), value)
            .map_err(io("insert"))?;
        state.bytes += size;
        state.records += 1;
        state.counters.appended += 1;
        self.save_counters(&state.counters)?;
        self.db.flush().map_err(io("flush"))?;
        drop(state);
        self.notify.notify_one();
        Ok(Appended::Stored {
            seq,
            payload_len: payload.len(),
        })
    }

    fn save_counters(&self, counters: &Counters) -> Result<(), OutboxError> {
        let bytes = serde_json::to_vec(counters).unwrap_or_default();
        self.meta
            .insert(COUNTERS_KEY, bytes)
            .map_err(io("save counters"))?;
        Ok(())
    }

    /// Up to `limit` records with a sequence number after `after` (from the oldest when `None`).
    /// Damaged records are removed, counted and logged, never returned.
    pub fn pending(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, OutboxError> {
        let start = after.map_or(0, |s| s.saturating_add(1));
        let mut out = Vec::new();
        for item in self.records.range(start.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(io("read"))?;
            let seq = key_seq(&k);
            match envelope::decode(&v) {
                Ok((sensor, payload)) => out.push(StoredRecord {
                    seq,
                    sensor,
                    payload,
                }),
                Err(reason) => {
                    error!(seq, reason, "Damaged outbox record removed");
                    self.remove_counted(&k, "remove damaged", |c| c.corrupt += 1)?;
                }
            }
        }
        Ok(out)
    }

    /// Deletes a delivered record. Not flushed at once: losing an ack in a crash only means the record
    /// is sent again, and consumers drop duplicates by id.
    pub fn ack(&self, seq: u64) -> Result<(), OutboxError> {
        self.remove_counted(&seq.to_be_bytes(), "ack", |c| c.acked += 1)
    }

    /// Removes a record that can never be delivered, counting it. The caller logs why.
    pub fn discard(&self, seq: u64) -> Result<(), OutboxError> {
        self.remove_counted(&seq.to_be_bytes(), "discard", |c| c.undeliverable += 1)
    }

    /// Removes a record if it is still there, keeping size and counters in step.
    fn remove_counted(
        &self,
        key: &[u8],
        op: &'static str,
        count: impl FnOnce(&mut Counters),
    ) -> Result<(), OutboxError> {
        let mut state = self.lock();
        if let Some(v) = self.records.remove(key).map_err(io(op))? {
            state.bytes = state.bytes.saturating_sub((key.len() + v.len()) as u64);
            state.records = state.records.saturating_sub(1);
            count(&mut state.counters);
            self.save_counters(&state.counters)?;
        }
        Ok(())
    }

    /// Current size and counters.
    pub fn stats(&self) -> OutboxStats {
        let state = self.lock();
        OutboxStats {
            records: state.records,
            bytes: state.bytes,
            max_bytes: self.max_bytes,
            counters: state.counters.clone(),
        }
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), OutboxError> {
        self.db.flush().map_err(io("flush"))?;
        Ok(())
    }
}

fn key_seq(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[8 - n..].copy_from_slice(&k[k.len() - n..]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests;
