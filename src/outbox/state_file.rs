//! `state.json` beside the generations: counters, the reserved sequence range and the thinning
//! stride. Written atomically (temporary file, fsync, rename), so it is either the old or the new
//! version after a crash.

use super::Counters;
use crate::durable::write_atomically;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Sequence numbers are reserved on disk in blocks of this many before any of them is used, so
/// that after a crash no id is handed out twice (a record published but not yet durable keeps an
/// id that a consumer may already have seen).
pub(super) const SEQ_BLOCK: u64 = 1_000_000;

/// What `state.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct PersistedState {
    /// Sequence numbers below this may have been used.
    pub reserved_seq: u64,
    /// Current thinning stride (1: not thinning).
    #[serde(default = "one")]
    pub stride: u64,
    pub counters: Counters,
    /// At a clean close: each generation's directory name and the length of its `db` file. A file
    /// found shorter at the next open was truncated while the daemon was stopped; sled would
    /// silently open what is left.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub closed: BTreeMap<String, u64>,
}

fn one() -> u64 {
    1
}

pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Reads the state; `Ok(None)` if there is none yet, `Err` with a reason if it is unreadable.
pub(super) fn load(dir: &Path) -> Result<Option<PersistedState>, String> {
    match std::fs::read(path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("state.json: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("state.json: {e}")),
    }
}

/// Writes the state atomically and durably.
pub(super) fn save(dir: &Path, state: &PersistedState) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    write_atomically(&path(dir), &bytes)
}
