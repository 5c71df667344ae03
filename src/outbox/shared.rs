//! The outbox's state shared by the `Outbox` handle and its flusher thread, under one lock, and
//! the operations on it that both use: opening a new generation, reserving sequence numbers,
//! saving the state file, removing a record, flushing.

use super::generation::{self, Generation};
use super::generations::Generations;
use super::reader::RecordKey;
use super::state_file::{self, PersistedState};
use super::{dir_lock, io, limits, write_failure, Counters, OutboxError};
use crate::config::OutboxConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// What the flusher thread shares with the outbox.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) config: OutboxConfig,
    pub(super) priorities: HashMap<String, u8>,
    pub(super) inner: Mutex<Inner>,
    pub(super) notify: Arc<Notify>,
    pub(super) _lock: dir_lock::DirLock,
}

/// Mutable state, under one lock.
pub(super) struct Inner {
    /// By first seq; the last one takes new records.
    pub(super) gens: Generations,
    pub(super) next_seq: u64,
    pub(super) reserved_seq: u64,
    pub(super) stride: u64,
    /// Where the thinning pass continues: `(priority, seq)`.
    pub(super) thin_cursor: Option<(u8, u64)>,
    pub(super) counters: Counters,
    pub(super) bytes: u64,
    pub(super) records: u64,
    /// Next ordinal per sensor.
    pub(super) ordinals: HashMap<String, u64>,
    /// Highest seq stored, and highest known durable.
    pub(super) last_stored: Option<u64>,
    pub(super) last_durable: Option<u64>,
    /// Something changed since the last flush / state save.
    pub(super) dirty: bool,
    pub(super) state_dirty: bool,
    pub(super) appends_since_rotate_check: u32,
    /// Set while writes fail: the generation that failed, closed, and when to retry.
    pub(super) broken: Option<write_failure::Broken>,
}

impl Inner {
    /// Record count and bytes from the generations' own figures.
    pub(super) fn recount(&mut self) {
        self.records = self.gens.values().map(|g| g.records).sum();
        self.bytes = self.gens.values().map(|g| g.bytes).sum();
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a generation whose first record will be `next_seq`.
    pub(super) fn new_generation(&self, inner: &mut Inner) -> Result<(), String> {
        let first = inner.next_seq;
        let path = self.dir.join(generation::dir_name(first));
        let (g, _) = Generation::open(&path, inner.gens.newest_settings(), true).map_err(|e| {
            // It is new and holds nothing; half-created (disk full), it would look damaged later.
            let _ = std::fs::remove_dir_all(&path);
            e.reason
        })?;
        inner.gens.insert(first, g);
        Ok(())
    }

    /// Reserves the next block of sequence numbers on disk before `seq` is used.
    pub(super) fn reserve(&self, inner: &mut Inner, seq: u64) -> std::io::Result<()> {
        let reserved = seq + state_file::SEQ_BLOCK;
        state_file::save(
            &self.dir,
            &PersistedState {
                reserved_seq: reserved,
                stride: inner.stride,
                counters: inner.counters.clone(),
                closed: BTreeMap::new(),
            },
        )?;
        inner.reserved_seq = reserved;
        inner.state_dirty = false;
        Ok(())
    }

    /// Saves counters and stride (not the reservation, which only grows in `reserve`).
    pub(super) fn save_state(&self, inner: &mut Inner) -> std::io::Result<()> {
        self.save_state_closed(inner, BTreeMap::new())
    }

    /// Saves the state with the file lengths of a clean close.
    pub(super) fn save_state_closed(
        &self,
        inner: &mut Inner,
        closed: BTreeMap<String, u64>,
    ) -> std::io::Result<()> {
        state_file::save(
            &self.dir,
            &PersistedState {
                reserved_seq: inner.reserved_seq,
                stride: inner.stride,
                counters: inner.counters.clone(),
                closed,
            },
        )?;
        inner.state_dirty = false;
        Ok(())
    }

    /// Removes a record if it is still there, keeping sizes in step; true if it was there.
    pub(super) fn remove(
        &self,
        inner: &mut Inner,
        key: RecordKey,
        op: &'static str,
    ) -> Result<bool, OutboxError> {
        let Some(first) = inner.gens.containing(key.seq) else {
            return Ok(false);
        };
        let holds_priority = inner.gens.get(first).is_some_and(|g| {
            g.by_priority
                .get(key.priority as usize)
                .is_some_and(|&n| n > 0)
        });
        if !holds_priority {
            return Ok(false);
        }
        let removed = inner
            .gens
            .tree(first)?
            .remove(generation::key(key.priority, key.seq))
            .map_err(io(op))?;
        let Some(v) = removed else {
            return Ok(false);
        };
        let size = (generation::KEY_LEN + v.len()) as u64;
        if let Some(g) = inner.gens.get_mut(first) {
            g.count_remove(key.priority, size);
        }
        inner.records = inner.records.saturating_sub(1);
        inner.bytes = inner.bytes.saturating_sub(size);
        inner.dirty = true;
        inner.state_dirty = true;
        limits::after_removal(self, inner);
        Ok(true)
    }

    /// Flushes every generation and saves the state.
    pub(super) fn flush_all(&self) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        for db in inner.gens.open_dbs() {
            db.flush().map_err(io("flush"))?;
        }
        inner.dirty = false;
        if let Some(seq) = inner.last_stored {
            inner.last_durable = Some(seq);
        }
        if inner.state_dirty {
            self.save_state(&mut inner)
                .map_err(|e| OutboxError::Unavailable(format!("cannot write state.json: {e}")))?;
        }
        Ok(())
    }
}
