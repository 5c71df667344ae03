//! Reading waiting records in sending order: highest priority first, oldest first within one.

use super::generation;
use super::generations::Generations;
use super::{envelope, now_ms, Inner, OutboxError, Shared, PRIORITIES};
use tracing::error;

/// Identifies a stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey {
    /// 0 (high) to 2 (low).
    pub priority: u8,
    /// Outbox sequence number.
    pub seq: u64,
}

/// A stored record, as read back for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Where it is stored.
    pub key: RecordKey,
    /// Sensor id, which picks the topic.
    pub sensor: String,
    /// When it was stored (Unix ms; 0 if unknown).
    pub stored_at_ms: u64,
    /// The JSON prediction.
    pub payload: Vec<u8>,
}

impl StoredRecord {
    /// Outbox sequence number.
    pub fn seq(&self) -> u64 {
        self.key.seq
    }
}

/// A reader's position: a range of sequence numbers and how far each priority has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    lo: u64,
    hi: u64,
    next: [u64; PRIORITIES as usize],
}

impl Cursor {
    /// Every record.
    pub fn all() -> Self {
        Self::range(0, u64::MAX)
    }

    /// Records up to and including `last` (none if `None`): the backlog when a connection starts.
    pub fn up_to(last: Option<u64>) -> Self {
        match last {
            Some(last) => Self::range(0, last),
            None => Self::range(1, 0),
        }
    }

    /// Records after `last` (all if `None`): what is stored while connected.
    pub fn after(last: Option<u64>) -> Self {
        Self::range(last.map_or(0, |l| l.saturating_add(1)), u64::MAX)
    }

    /// Makes `key` (read but not used) the next record of its priority again.
    pub fn unread(&mut self, key: RecordKey) {
        if let Some(next) = self.next.get_mut(key.priority as usize) {
            *next = (*next).min(key.seq);
        }
    }

    fn range(lo: u64, hi: u64) -> Self {
        Self {
            lo,
            hi,
            next: [lo; PRIORITIES as usize],
        }
    }
}

/// First seqs of the generations, oldest first, that hold records of priority `p` and may hold
/// some with seqs in `lo..=hi`; the others are not opened.
fn holding(gens: &Generations, p: u8, lo: u64, hi: u64) -> Vec<u64> {
    gens.iter()
        .filter(|(&first, g)| g.by_priority[p as usize] > 0 && first <= hi && gens.end(first) > lo)
        .map(|(&first, _)| first)
        .collect()
}

/// Up to `limit` records after `cursor` (see [`super::Outbox::pending`]).
pub(super) fn read(
    s: &Shared,
    inner: &mut Inner,
    cursor: &mut Cursor,
    limit: usize,
) -> Result<Vec<StoredRecord>, OutboxError> {
    let ttl_ms = s.config.ttl_secs.saturating_mul(1000);
    let now = now_ms();
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    let mut expired = Vec::new();
    'outer: for p in 0..PRIORITIES {
        let start = cursor.next[p as usize].max(cursor.lo);
        if start > cursor.hi {
            continue;
        }
        for first in holding(&inner.gens, p, start, cursor.hi) {
            if out.len() >= limit {
                break 'outer;
            }
            let range = generation::key(p, start)..=generation::key(p, cursor.hi);
            for item in inner.gens.tree(first)?.range(range) {
                if out.len() >= limit {
                    break 'outer;
                }
                let (k, v) = item.map_err(super::io("read"))?;
                let Some((_, seq)) = generation::parse_key(&k) else {
                    continue;
                };
                cursor.next[p as usize] = seq.saturating_add(1);
                let key = super::RecordKey { priority: p, seq };
                match envelope::decode(&v) {
                    Ok(e) if ttl_ms > 0 && e.stored_at_ms > 0 && e.stored_at_ms + ttl_ms < now => {
                        expired.push(key)
                    }
                    Ok(e) => out.push(StoredRecord {
                        key,
                        sensor: e.sensor,
                        stored_at_ms: e.stored_at_ms,
                        payload: e.payload,
                    }),
                    Err(reason) => {
                        error!(seq, reason, "Damaged outbox record removed");
                        damaged.push(key);
                    }
                }
            }
        }
    }
    for k in damaged {
        if s.remove(inner, k, "remove damaged")? {
            inner.counters.corrupt += 1;
        }
    }
    for k in expired {
        if s.remove(inner, k, "expire")? {
            inner.counters.expired += 1;
        }
    }
    Ok(out)
}

/// Deletes records older than the TTL from the front of each priority; returns how many.
pub(super) fn sweep_expired(s: &Shared, inner: &mut Inner) -> Result<u64, OutboxError> {
    let ttl_ms = s.config.ttl_secs.saturating_mul(1000);
    if ttl_ms == 0 {
        return Ok(0);
    }
    let now = now_ms();
    let mut expired = Vec::new();
    for p in 0..PRIORITIES {
        'gens: for first in holding(&inner.gens, p, 0, u64::MAX) {
            for item in inner.gens.tree(first)?.scan_prefix([p]) {
                let (k, v) = item.map_err(super::io("read"))?;
                let Some((_, seq)) = generation::parse_key(&k) else {
                    continue;
                };
                match envelope::decode(&v) {
                    Ok(e) if e.stored_at_ms > 0 && e.stored_at_ms + ttl_ms < now => {
                        expired.push(super::RecordKey { priority: p, seq })
                    }
                    // Records are in store order: the first young one ends this priority.
                    Ok(_) => break 'gens,
                    Err(_) => {}
                }
            }
        }
    }
    let mut n = 0;
    for k in expired {
        if s.remove(inner, k, "expire")? {
            inner.counters.expired += 1;
            n += 1;
        }
    }
    Ok(n)
}

/// Every record in sending order, for export and inspection.
pub(super) fn for_each(
    gens: &mut Generations,
    mut f: impl FnMut(StoredRecord) -> bool,
) -> Result<(), OutboxError> {
    for p in 0..PRIORITIES {
        for first in holding(gens, p, 0, u64::MAX) {
            for item in gens.tree(first)?.scan_prefix([p]) {
                let (k, v) = item.map_err(super::io("read"))?;
                let (Some((_, seq)), Ok(e)) = (generation::parse_key(&k), envelope::decode(&v))
                else {
                    continue;
                };
                let record = StoredRecord {
                    key: super::RecordKey { priority: p, seq },
                    sensor: e.sensor,
                    stored_at_ms: e.stored_at_ms,
                    payload: e.payload,
                };
                if !f(record) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
