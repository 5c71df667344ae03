//! The cap: what gives way when a new record would pass `max_bytes`.
//!
//! Lower priorities give way first. `drop_oldest` deletes the oldest records; `drop_newest` refuses
//! the new one (unless lower-priority records can make room); `thin` keeps every k-th record of each
//! sensor: it raises a stride (1 → k → k² …) and walks the backlog oldest first deleting records
//! whose per-sensor ordinal is not a multiple of it, while new records are stored only when their
//! ordinal is. A long outage so leaves an even sample of the whole period. Thinning stops once the
//! backlog has drained below `max_bytes / (2k)`.

use super::generation::{self, Generation};
use super::generations::Generations;
use super::{envelope, Inner, OutboxError, RecordKey, Shared, PRIORITIES};
use crate::config::WhenFull;
use tracing::{debug, info, warn};

/// The outbox directory never grows past this many times `max_bytes`: past it the oldest
/// generation is dropped whole. With compression a full outbox of JSON predictions stays near 1×;
/// without (sled needs about 2.3 bytes of disk per stored byte) this bound is what limits it.
pub const DISK_BOUND_FACTOR: u64 = 2;
/// How far below the directory bound the oldest generation is already dropped.
const BOUND_MARGIN: u64 = 2 * 1024 * 1024;

/// Past this stride thinning gives up and drops the oldest instead.
const MAX_STRIDE: u64 = 1 << 40;

impl Shared {
    /// Makes room for a record of `size` bytes at `priority`; false if the record must be refused.
    pub(super) fn make_room(
        &self,
        inner: &mut Inner,
        size: u64,
        priority: u8,
    ) -> Result<bool, OutboxError> {
        let max = self.config.max_bytes;
        if inner.bytes + size <= max {
            return Ok(true);
        }
        if size > max {
            self.refuse(inner);
            return Ok(false);
        }
        match self.config.when_full {
            WhenFull::DropNewest => {
                // Only lower-priority records give way to a new one.
                while inner.bytes + size > max {
                    if self.pop_oldest(inner, priority + 1)?.is_none() {
                        self.refuse(inner);
                        return Ok(false);
                    }
                    inner.counters.dropped_oldest += 1;
                }
            }
            WhenFull::DropOldest => self.drop_oldest_until(inner, size)?,
            WhenFull::Thin => {
                self.thin_until(inner, size)?;
                self.drop_oldest_until(inner, size)?;
            }
        }
        Ok(true)
    }

    /// Starts a new generation if the newest has grown past `rotate_bytes`, and keeps the directory
    /// under its hard bound by dropping the oldest generation whole if it would pass it.
    pub(super) fn rotate_if_due(&self, inner: &mut Inner) {
        let rotate = self.config.rotate_bytes();
        let due = inner
            .gens
            .values()
            .next_back()
            .is_some_and(|g| g.written >= rotate || g.disk_bytes() >= rotate);
        if due {
            match self.new_generation(inner) {
                Ok(()) => debug!(generations = inner.gens.len(), "Outbox generation started"),
                Err(e) => warn!(error = %e, "Cannot start a new outbox generation"),
            }
        }
        let bound = self.config.max_bytes.saturating_mul(DISK_BOUND_FACTOR);
        // sled grows its files a segment at a time and this runs only every few hundred appends:
        // act a little early so that the bound holds in between too.
        let limit = bound - (bound / 4).min(BOUND_MARGIN);
        while inner.gens.len() > 1 {
            let disk: u64 = inner.gens.values().map(Generation::disk_bytes).sum();
            if disk <= limit {
                break;
            }
            let Some(first) = inner.gens.firsts().first().copied() else {
                break;
            };
            let Some(g) = inner.gens.remove(first) else {
                break;
            };
            inner.records = inner.records.saturating_sub(g.records);
            inner.bytes = inner.bytes.saturating_sub(g.bytes);
            inner.counters.dropped_oldest += g.records;
            inner.state_dirty = true;
            let dir = g.dir.clone();
            drop(g);
            let removed = std::fs::remove_dir_all(&dir);
            warn!(generation = %dir.display(), disk_bytes = disk, bound, removed = removed.is_ok(), "Outbox directory at its bound: oldest generation dropped whole");
        }
    }

    fn refuse(&self, inner: &mut Inner) {
        inner.counters.dropped_newest += 1;
        inner.state_dirty = true;
        if inner.counters.dropped_newest.is_power_of_two() {
            warn!(
                dropped = inner.counters.dropped_newest,
                max_bytes = self.config.max_bytes,
                "Outbox full: new predictions are being dropped"
            );
        }
    }

    fn drop_oldest_until(&self, inner: &mut Inner, size: u64) -> Result<(), OutboxError> {
        while inner.bytes + size > self.config.max_bytes {
            if self.pop_oldest(inner, 0)?.is_none() {
                break;
            }
            inner.counters.dropped_oldest += 1;
            if inner.counters.dropped_oldest.is_power_of_two() {
                warn!(
                    dropped = inner.counters.dropped_oldest,
                    max_bytes = self.config.max_bytes,
                    "Outbox full: oldest predictions are being dropped"
                );
            }
        }
        Ok(())
    }

    /// Deletes the oldest record of the lowest priority present, considering only priorities
    /// `min_priority` (a byte: 0 high) and lower.
    fn pop_oldest(
        &self,
        inner: &mut Inner,
        min_priority: u8,
    ) -> Result<Option<RecordKey>, OutboxError> {
        for p in (min_priority..PRIORITIES).rev() {
            if let Some(seq) = first_seq_of(&mut inner.gens, p, 0)? {
                let key = RecordKey { priority: p, seq };
                self.remove(inner, key, "drop oldest")?;
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    fn thin_until(&self, inner: &mut Inner, size: u64) -> Result<(), OutboxError> {
        let k = self.config.thin_factor;
        if inner.thin_cursor.is_none() {
            if inner.stride >= MAX_STRIDE {
                return Ok(());
            }
            inner.stride = inner.stride.saturating_mul(k);
            inner.thin_cursor = Some((PRIORITIES - 1, 0));
            inner.state_dirty = true;
            info!(
                stride = inner.stride,
                "Outbox full: keeping every {}th record of each sensor", inner.stride
            );
        }
        while inner.bytes + size > self.config.max_bytes {
            let Some((p, from)) = inner.thin_cursor else {
                break;
            };
            match next_record(&mut inner.gens, p, from)? {
                Some((key, ordinal)) => {
                    inner.thin_cursor = Some((key.priority, key.seq.saturating_add(1)));
                    if ordinal % inner.stride != 0 && self.remove(inner, key, "thin")? {
                        inner.counters.thinned += 1;
                    }
                }
                None => {
                    // A whole pass is done and it is still full: thin further.
                    inner.thin_cursor = None;
                    if inner.stride >= MAX_STRIDE {
                        break;
                    }
                    return self.thin_until(inner, size);
                }
            }
        }
        Ok(())
    }
}

/// The first record of priority `p` at or after `seq`: its key and value, from the oldest
/// generation holding one (generations without records of `p` after `seq` are not opened).
fn first_from(
    gens: &mut Generations,
    p: u8,
    seq: u64,
) -> Result<Option<(sled::IVec, sled::IVec)>, OutboxError> {
    let candidates: Vec<u64> = gens
        .iter()
        .filter(|(&first, g)| g.by_priority[p as usize] > 0 && gens.end(first) > seq)
        .map(|(&first, _)| first)
        .collect();
    for first in candidates {
        let range = generation::key(p, seq)..=generation::key(p, u64::MAX);
        if let Some(item) = gens.tree(first)?.range(range).next() {
            return item.map(Some).map_err(super::io("read"));
        }
    }
    Ok(None)
}

/// The seq of the first record of priority `p` at or after `seq`.
fn first_seq_of(gens: &mut Generations, p: u8, seq: u64) -> Result<Option<u64>, OutboxError> {
    Ok(first_from(gens, p, seq)?
        .and_then(|(k, _)| generation::parse_key(&k))
        .map(|(_, seq)| seq))
}

/// The first record at or after `(priority, seq)` in thinning order (low priority first, oldest
/// first), with its ordinal.
fn next_record(
    gens: &mut Generations,
    priority: u8,
    seq: u64,
) -> Result<Option<(RecordKey, u64)>, OutboxError> {
    for p in (0..=priority).rev() {
        let start = if p == priority { seq } else { 0 };
        if let Some((k, v)) = first_from(gens, p, start)? {
            let Some((_, seq)) = generation::parse_key(&k) else {
                continue;
            };
            let ordinal = envelope::decode(&v).map_or(0, |e| e.ordinal);
            return Ok(Some((RecordKey { priority: p, seq }, ordinal)));
        }
    }
    Ok(None)
}

/// Stops thinning once the backlog has drained well below the cap.
pub(super) fn after_removal(s: &Shared, inner: &mut Inner) {
    if inner.stride > 1
        && s.config.when_full == WhenFull::Thin
        && inner.bytes < s.config.max_bytes / (2 * s.config.thin_factor)
    {
        inner.stride = 1;
        inner.thin_cursor = None;
        inner.state_dirty = true;
        info!("Outbox backlog drained: thinning stopped");
    }
}
