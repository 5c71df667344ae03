//! The set of generations, oldest first, and which of their databases are open.
//!
//! The newest generation, which takes new records, is always open. Older ones are opened when a
//! reader, an acknowledgement or the cap policy needs them, and at most [`MAX_OPEN_OLDER`] of them
//! stay open: the least recently used is closed first, and housekeeping closes those unused since
//! its last run. A full outbox so keeps two or three databases open (the newest, the oldest being
//! dropped or sent, the one a reader is in) however many generations it has, and its memory does
//! not grow with the backlog.
//!
//! The page cache (`cache_bytes`) is split: half for the newest, a quarter for each older one.

use super::generation::{DbSettings, Generation};
use super::OutboxError;
use std::collections::BTreeMap;
use tracing::warn;

/// Older generations kept open at most.
pub(super) const MAX_OPEN_OLDER: usize = 2;

/// Every generation, by first seq.
pub(super) struct Generations {
    map: BTreeMap<u64, Generation>,
    /// Last use of each open older generation, by first seq (a tick of `clock`).
    used: BTreeMap<u64, u64>,
    clock: u64,
    /// The tick at the last [`Generations::close_idle`].
    idle_mark: u64,
    cache_bytes: u64,
    compression: bool,
}

impl Generations {
    /// An empty set whose databases share `cache_bytes` of page cache.
    pub fn new(cache_bytes: u64, compression: bool) -> Self {
        Self {
            map: BTreeMap::new(),
            used: BTreeMap::new(),
            clock: 0,
            idle_mark: 0,
            cache_bytes,
            compression,
        }
    }

    /// How the newest generation's database is opened.
    pub fn newest_settings(&self) -> DbSettings {
        DbSettings {
            cache_bytes: self.cache_bytes / 2,
            compression: self.compression,
        }
    }

    /// How an older generation's database is opened.
    pub fn older_settings(&self) -> DbSettings {
        DbSettings {
            cache_bytes: self.cache_bytes / (2 * MAX_OPEN_OLDER as u64),
            compression: self.compression,
        }
    }

    /// Adds a generation. If it is the newest, the one that was newest before is closed (it is
    /// opened again, with an older one's cache, when it is needed); if not, it is closed itself.
    pub fn insert(&mut self, first: u64, mut g: Generation) {
        match self.newest() {
            Some(newest) if newest > first => close_logged(&mut g),
            Some(newest) => self.close_one(newest),
            None => {}
        }
        self.map.insert(first, g);
    }

    /// Removes a generation (its database is closed when the value is dropped).
    pub fn remove(&mut self, first: u64) -> Option<Generation> {
        self.used.remove(&first);
        self.map.remove(&first)
    }

    /// Number of generations.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every generation, oldest first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Generation> {
        self.map.values()
    }

    /// Every generation with its first seq, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &Generation)> {
        self.map.iter()
    }

    /// First seqs, oldest first.
    pub fn firsts(&self) -> Vec<u64> {
        self.map.keys().copied().collect()
    }

    /// First seq of the newest generation.
    pub fn newest(&self) -> Option<u64> {
        self.map.keys().next_back().copied()
    }

    /// The generation with first seq `first`.
    pub fn get(&self, first: u64) -> Option<&Generation> {
        self.map.get(&first)
    }

    /// The generation with first seq `first`.
    pub fn get_mut(&mut self, first: u64) -> Option<&mut Generation> {
        self.map.get_mut(&first)
    }

    /// First seq of the generation that holds `seq`, if any.
    pub fn containing(&self, seq: u64) -> Option<u64> {
        self.map.range(..=seq).next_back().map(|(f, _)| *f)
    }

    /// The seqs of generation `first` are below this (the next generation's first seq).
    pub fn end(&self, first: u64) -> u64 {
        self.map
            .range(first.saturating_add(1)..)
            .next()
            .map_or(u64::MAX, |(f, _)| *f)
    }

    /// The records of generation `first`, opening its database if it is closed (and closing the
    /// least recently used older one if too many are open).
    pub fn tree(&mut self, first: u64) -> Result<&sled::Tree, OutboxError> {
        let newest = self.newest();
        self.clock += 1;
        let open = self.map.get(&first).is_some_and(Generation::is_open);
        if Some(first) != newest {
            if !open {
                while self.used.len() >= MAX_OPEN_OLDER {
                    let Some((&lru, _)) = self.used.iter().min_by_key(|(_, &t)| t) else {
                        break;
                    };
                    self.close_one(lru);
                }
            }
            self.used.insert(first, self.clock);
        }
        let settings = if Some(first) == newest {
            self.newest_settings()
        } else {
            self.older_settings()
        };
        let g = self.map.get_mut(&first).ok_or_else(|| OutboxError::Open {
            path: std::path::PathBuf::from(super::generation::dir_name(first)),
            reason: "no such generation".into(),
        })?;
        if let Err(e) = g.reopen(settings) {
            self.used.remove(&first);
            return Err(OutboxError::Open {
                path: g.dir.clone(),
                reason: e.reason,
            });
        }
        g.tree().ok_or_else(|| OutboxError::Open {
            path: g.dir.clone(),
            reason: "not open".into(),
        })
    }

    /// The databases now open, to flush.
    pub fn open_dbs(&self) -> Vec<sled::Db> {
        self.map.values().filter_map(|g| g.db().cloned()).collect()
    }

    /// Closes the older generations not used since the last call; true if any was closed.
    pub fn close_idle(&mut self) -> bool {
        let idle: Vec<u64> = self
            .used
            .iter()
            .filter(|(_, &t)| t <= self.idle_mark)
            .map(|(f, _)| *f)
            .collect();
        self.idle_mark = self.clock;
        let any = !idle.is_empty();
        for first in idle {
            self.close_one(first);
        }
        any
    }

    /// Closes generation `first`'s database (it stays open if it cannot be flushed).
    fn close_one(&mut self, first: u64) {
        self.used.remove(&first);
        if let Some(g) = self.map.get_mut(&first) {
            close_logged(g);
        }
    }
}

fn close_logged(g: &mut Generation) {
    if let Err(e) = g.close() {
        warn!(generation = %g.dir.display(), error = %e, "Cannot close outbox generation; it stays open");
    }
}
