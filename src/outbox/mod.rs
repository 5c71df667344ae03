//! The outbox: every prediction is stored here before it is published and deleted only after the
//! broker acknowledged it (PUBACK). It, not the MQTT client's memory, is the source of truth for what
//! is still undelivered; after any reconnect or restart everything in it is sent again.
//!
//! Layout of the directory:
//! - `gen-{first seq}/`: generations, each a sled database (zstd-compressed unless
//!   `compression = false`); new records go to the newest, which is replaced by a fresh one once
//!   `rotate_bytes` of records were written to it or its files reach that size; a drained older
//!   one is deleted whole (see [`generation`]); only those in use are open (see [`generations`]).
//!   The directory is kept under [`DISK_BOUND_FACTOR`] × `max_bytes` by dropping the oldest
//!   generation whole.
//! - `state.json`: counters, reserved sequence numbers, thinning stride (see [`state_file`]).
//! - `quarantine/`: generations or state that could not be opened, kept for inspection.
//! - `LOCK`: held while the outbox is open.
//!
//! Records are keyed by priority, then by a sequence number that only grows (across restarts and
//! crashes too). Appends are serialized under one lock so that keys become visible in sequence
//! order: a reader's cursor can never skip a record.
//!
//! Durability: with `durability = "batch"` a background thread fsyncs at most `flush_interval_ms`
//! after a write; with `"every_record"` an append returns only after its fsync. Either way the point
//! where a record became durable is logged at debug level under the target
//! `edgeinfer::outbox::durable`.

mod dir_lock;
mod envelope;
mod flusher;
mod generation;
mod generations;
mod limits;
mod quarantine;
mod reader;
mod recovery;
mod shared;
mod state_file;
mod stats;
mod write_failure;

pub use generation::dir_bytes;
pub use limits::DISK_BOUND_FACTOR;
pub use reader::{Cursor, RecordKey, StoredRecord};
pub use stats::{Counters, OutboxStats};

use crate::config::{Durability, OutboxConfig, Priority, WhenFull};
use generation::Generation;
use generations::Generations;
use recovery::Recovered;
use shared::{Inner, Shared};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::Notify;
use tracing::{debug, error, warn};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The directory could not be created or locked.
    #[error("cannot open outbox at {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// A read or write failed.
    #[error("outbox {op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
    /// Writes are failing (disk full, I/O error); retried in the background.
    #[error("outbox cannot store records right now: {0}")]
    Unavailable(String),
}

fn io(op: &'static str) -> impl FnOnce(sled::Error) -> OutboxError {
    move |source| OutboxError::Io { op, source }
}

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored under `seq` (durable now with `every_record`, within the flush interval with `batch`).
    Stored {
        /// Sequence number.
        seq: u64,
        /// Bytes of the JSON payload.
        payload_len: usize,
    },
    /// Not stored because of the cap policy (`drop_newest`, `thin`); counted.
    Rejected,
}

/// The durable outbox.
pub struct Outbox {
    shared: Arc<Shared>,
    flusher: Option<flusher::Flusher>,
}

/// Appends between checks of the newest generation's size.
const ROTATE_CHECK_EVERY: u32 = 256;

/// sled's priority byte of a sensor priority.
fn priority_byte(p: Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// Number of priority levels (key prefixes 0..PRIORITIES, sent in that order).
const PRIORITIES: u8 = 3;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`; every sensor has normal priority.
    pub fn open(dir: &Path, config: &OutboxConfig) -> Result<Self, OutboxError> {
        Self::open_with_priorities(dir, config, &HashMap::new())
    }

    /// Opens (or creates) the outbox in `dir`, with each sensor's priority (unlisted: normal).
    ///
    /// A generation or state file that cannot be opened is moved to `quarantine/` (logged at ERROR
    /// and counted) and the outbox starts without it: a damaged store never stops the daemon.
    pub fn open_with_priorities(
        dir: &Path,
        config: &OutboxConfig,
        priorities: &HashMap<String, Priority>,
    ) -> Result<Self, OutboxError> {
        let open_err = |reason: String| OutboxError::Open {
            path: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let lock = dir_lock::acquire(dir).map_err(open_err)?;

        let Recovered {
            gens,
            next_seq,
            persisted,
            ordinals,
        } = recovery::recover(dir, config);
        let (records, bytes) = gens
            .values()
            .fold((0, 0), |(r, b), g| (r + g.records, b + g.bytes));

        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            config: config.clone(),
            priorities: priorities
                .iter()
                .map(|(s, p)| (s.clone(), priority_byte(*p)))
                .collect(),
            inner: Mutex::new(Inner {
                gens,
                next_seq,
                reserved_seq: next_seq,
                stride: persisted.stride.max(1),
                thin_cursor: None,
                counters: persisted.counters,
                bytes,
                records,
                ordinals,
                last_stored: None,
                last_durable: None,
                dirty: false,
                state_dirty: true,
                appends_since_rotate_check: 0,
                broken: None,
            }),
            notify: Arc::new(Notify::new()),
            _lock: lock,
        });
        {
            // On a full disk these fail; the daemon still starts, and appends retry them (counted
            // as write errors) until space returns.
            let mut inner = shared.lock();
            if inner.gens.is_empty() {
                if let Err(e) = shared.new_generation(&mut inner) {
                    error!(error = %e, "Cannot start an outbox generation; retrying on each prediction");
                }
            }
            if let Err(e) = shared.reserve(&mut inner, next_seq) {
                error!(error = %e, "Cannot write the outbox state; retrying on each prediction");
            }
        }
        let flusher = flusher::Flusher::start(Arc::clone(&shared));
        Ok(Self {
            shared,
            flusher: Some(flusher),
        })
    }

    /// Woken after every append, for the uplink.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.shared.notify)
    }

    /// Stores a record built by `make` from its sequence number, applying the cap.
    ///
    /// With `durability = "every_record"` it returns once the record is on disk; with `"batch"`,
    /// once it is written, and it is on disk within `flush_interval_ms`.
    pub fn append(
        &self,
        sensor: &str,
        make: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Appended, OutboxError> {
        let s = &*self.shared;
        let priority = s.priorities.get(sensor).copied().unwrap_or(1);
        let mut inner = s.lock();
        s.check_writable(&mut inner)?;

        let ordinal = {
            let next = inner.ordinals.entry(sensor.to_string()).or_insert(0);
            let o = *next;
            *next += 1;
            o
        };
        if s.config.when_full == WhenFull::Thin && inner.stride > 1 && ordinal % inner.stride != 0 {
            inner.counters.thinned += 1;
            inner.state_dirty = true;
            return Ok(Appended::Rejected);
        }

        let seq = inner.next_seq;
        if seq >= inner.reserved_seq {
            if let Err(e) = s.reserve(&mut inner, seq) {
                s.count_write_error(&mut inner);
                return Err(OutboxError::Unavailable(format!(
                    "cannot write state.json: {e}"
                )));
            }
        }
        inner.next_seq += 1;
        let payload = make(seq);
        let value = envelope::encode(sensor, now_ms(), ordinal, &payload);
        let size = (generation::KEY_LEN + value.len()) as u64;
        if !s.make_room(&mut inner, size, priority)? {
            return Ok(Appended::Rejected);
        }

        let written = {
            // `check_writable` made sure there is a generation.
            let newest = inner
                .gens
                .newest()
                .ok_or_else(|| OutboxError::Unavailable("no generation".into()))?;
            let r = inner
                .gens
                .tree(newest)?
                .insert(generation::key(priority, seq), value);
            if r.is_ok() {
                if let Some(g) = inner.gens.get_mut(newest) {
                    g.count_insert(priority, size);
                }
            }
            r
        };
        if let Err(e) = written {
            s.write_failed(&mut inner, e.to_string());
            return Err(OutboxError::Unavailable(e.to_string()));
        }
        inner.bytes += size;
        inner.records += 1;
        inner.counters.appended += 1;
        inner.last_stored = Some(seq);
        inner.dirty = true;
        inner.state_dirty = true;

        if s.config.durability == Durability::EveryRecord {
            let flushed = inner
                .gens
                .values()
                .next_back()
                .and_then(Generation::db)
                .map(|db| db.flush());
            if let Some(Err(e)) = flushed {
                s.write_failed(&mut inner, e.to_string());
                return Err(OutboxError::Unavailable(e.to_string()));
            }
            inner.last_durable = Some(seq);
            debug!(target: "edgeinfer::outbox::durable", upto = seq, "Outbox records durable");
        }
        inner.appends_since_rotate_check += 1;
        if inner.appends_since_rotate_check >= ROTATE_CHECK_EVERY {
            inner.appends_since_rotate_check = 0;
            s.rotate_if_due(&mut inner);
        }
        drop(inner);
        s.notify.notify_one();
        Ok(Appended::Stored {
            seq,
            payload_len: payload.len(),
        })
    }

    /// The highest sequence number stored so far in this run, if any: records up to it are the
    /// backlog when a connection starts.
    pub fn last_seq(&self) -> Option<u64> {
        let inner = self.shared.lock();
        inner.last_stored.or_else(|| inner.next_seq.checked_sub(1))
    }

    /// Up to `limit` records after `cursor`, highest priority first and oldest first within a
    /// priority; advances the cursor past them. Damaged records are removed and counted, expired
    /// ones removed and counted, never returned.
    pub fn pending(
        &self,
        cursor: &mut Cursor,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, OutboxError> {
        let s = &*self.shared;
        let mut inner = s.lock();
        reader::read(s, &mut inner, cursor, limit)
    }

    /// Deletes delivered records. Not flushed at once: losing an ack in a crash only means the
    /// record is sent again, and consumers drop duplicates by id.
    pub fn ack(&self, keys: &[RecordKey]) -> Result<(), OutboxError> {
        let s = &*self.shared;
        let mut inner = s.lock();
        for k in keys {
            if s.remove(&mut inner, *k, "ack")? {
                inner.counters.acked += 1;
            }
        }
        Ok(())
    }

    /// Removes a record that can never be delivered, counting it. The caller logs why.
    pub fn discard(&self, key: RecordKey) -> Result<(), OutboxError> {
        let s = &*self.shared;
        let mut inner = s.lock();
        if s.remove(&mut inner, key, "discard")? {
            inner.counters.undeliverable += 1;
        }
        Ok(())
    }

    /// Deletes every waiting record (counted as `purged`); returns how many.
    pub fn purge(&self) -> Result<u64, OutboxError> {
        let s = &*self.shared;
        let mut inner = s.lock();
        let purged = inner.records;
        for first in inner.gens.firsts() {
            if let Some(g) = inner.gens.remove(first) {
                let dir = g.dir.clone();
                drop(g);
                std::fs::remove_dir_all(&dir).map_err(|e| {
                    OutboxError::Unavailable(format!("cannot delete {}: {e}", dir.display()))
                })?;
            }
        }
        inner.records = 0;
        inner.bytes = 0;
        inner.counters.purged += purged;
        inner.state_dirty = true;
        s.new_generation(&mut inner)
            .map_err(|e| OutboxError::Unavailable(e.to_string()))?;
        Ok(purged)
    }

    /// Calls `f` with every waiting record in sending order until it returns false.
    pub fn for_each_record(&self, f: impl FnMut(StoredRecord) -> bool) -> Result<(), OutboxError> {
        let mut inner = self.shared.lock();
        reader::for_each(&mut inner.gens, f)
    }

    /// Records waiting; cheap, unlike `stats`, which reads the directory and the oldest records.
    pub fn records(&self) -> u64 {
        self.shared.lock().records
    }

    /// Current size and counters.
    pub fn stats(&self) -> OutboxStats {
        let s = &*self.shared;
        let mut inner = s.lock();
        let oldest_ms = (0..PRIORITIES)
            .filter_map(|p| oldest_stored_at(&mut inner.gens, p))
            .min();
        OutboxStats {
            records: inner.records,
            bytes: inner.bytes,
            max_bytes: s.config.max_bytes,
            disk_bytes: inner.gens.values().map(Generation::disk_bytes).sum(),
            generations: inner.gens.len() as u64,
            oldest_age_secs: oldest_ms.map(|t| now_ms().saturating_sub(t) / 1000),
            thin_stride: inner.stride,
            write_failing: inner.broken.is_some(),
            counters: inner.counters.clone(),
        }
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), OutboxError> {
        self.shared.flush_all()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(f) = self.flusher.take() {
            f.stop();
        }
        if let Err(e) = self.shared.flush_all() {
            warn!(error = %e, "Final outbox flush failed");
            return;
        }
        // Everything is on disk: note the files' lengths, to notice truncation at the next open.
        let s = &*self.shared;
        let mut inner = s.lock();
        let closed = inner
            .gens
            .values()
            .filter_map(|g| {
                let name = g.dir.file_name()?.to_str()?.to_string();
                Some((name, std::fs::metadata(g.dir.join("db")).ok()?.len()))
            })
            .collect();
        if let Err(e) = s.save_state_closed(&mut inner, closed) {
            warn!(error = %e, "Cannot save outbox state");
        }
    }
}

/// When the oldest record of priority `p` was stored (Unix ms), if known.
fn oldest_stored_at(gens: &mut Generations, p: u8) -> Option<u64> {
    let first = gens
        .iter()
        .find(|(_, g)| g.by_priority[p as usize] > 0)
        .map(|(f, _)| *f)?;
    let (_, v) = gens.tree(first).ok()?.scan_prefix([p]).next()?.ok()?;
    envelope::decode(&v)
        .ok()
        .map(|e| e.stored_at_ms)
        .filter(|&t| t > 0)
}

#[cfg(test)]
mod tests;
