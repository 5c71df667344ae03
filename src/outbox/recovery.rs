//! What opening an outbox finds on disk: the state file and every generation, each read through
//! once. A state file or generation that cannot be opened, or whose files are shorter than at the
//! last clean close, is moved to `quarantine/` (logged at ERROR and counted); one that is only
//! unreadable right now (an I/O error) is left for the next start.

use super::generation::{self, Generation};
use super::generations::Generations;
use super::quarantine;
use super::state_file::{self, PersistedState};
use crate::config::OutboxConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tracing::error;

/// What was found.
pub(super) struct Recovered {
    /// The generations read, the newest open.
    pub gens: Generations,
    /// The next sequence number: never one used before, even with the state file lost.
    pub next_seq: u64,
    /// The persisted state, counters updated with what was quarantined or found damaged.
    pub persisted: PersistedState,
    /// Next ordinal per sensor.
    pub ordinals: HashMap<String, u64>,
}

/// Reads the outbox in `dir`.
pub(super) fn recover(dir: &Path, config: &OutboxConfig) -> Recovered {
    let mut quarantined = 0u64;
    let mut persisted = match state_file::load(dir) {
        Ok(s) => s.unwrap_or_default(),
        Err(reason) => {
            quarantine::move_aside(dir, &state_file::path(dir), &reason);
            quarantined += 1;
            PersistedState::default()
        }
    };

    let mut gens = Generations::new(config.cache_bytes, config.compression);
    let mut max_seq = None;
    let mut ordinals: HashMap<String, u64> = HashMap::new();
    let mut corrupt = 0;
    let mut skipped = false;
    for (first_seq, path) in generation_dirs(dir) {
        if let Some(reason) = truncated(&path, &persisted.closed) {
            quarantine::move_aside(dir, &path, &reason);
            quarantined += 1;
            continue;
        }
        // Each is read through once here, then closed unless it is the newest.
        match Generation::open(&path, gens.newest_settings(), false) {
            Ok((g, contents)) => {
                if contents.damaged > 0 {
                    error!(generation = %path.display(), records = contents.damaged, "Damaged outbox records removed");
                }
                corrupt += contents.damaged;
                max_seq = max_seq.max(contents.max_seq);
                for (s, o) in contents.max_ordinal {
                    let next = ordinals.entry(s).or_insert(0);
                    *next = (*next).max(o + 1);
                }
                gens.insert(first_seq, g);
            }
            Err(e) if e.damaged => {
                quarantine::move_aside(dir, &path, &e.reason);
                quarantined += 1;
            }
            Err(e) => {
                // Not damaged, only unreadable now: left as it is for the next start.
                error!(generation = %path.display(), error = %e, "Cannot read outbox generation; its records wait for the next start");
                skipped = true;
            }
        }
    }

    let next_seq = persisted
        .reserved_seq
        .max(max_seq.map_or(0, |s| s + 1))
        // A lost state file must not let ids be reused.
        .max(if quarantined > 0 || skipped {
            max_seq.unwrap_or(0) + state_file::SEQ_BLOCK
        } else {
            0
        });
    persisted.counters.quarantined += quarantined;
    persisted.closed.clear();
    persisted.counters.corrupt += corrupt;
    Recovered {
        gens,
        next_seq,
        persisted,
        ordinals,
    }
}

/// Why a generation's files look truncated since the last clean close, if they do.
fn truncated(path: &Path, closed: &BTreeMap<String, u64>) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let expected = *closed.get(name)?;
    let len = std::fs::metadata(path.join("db")).map_or(0, |m| m.len());
    (len < expected).then(|| {
        format!("db file is {len} bytes, {expected} at the last clean shutdown: truncated")
    })
}

/// `(first seq, path)` of every generation directory, oldest first.
pub(super) fn generation_dirs(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let first = generation::parse_dir_name(name.to_str()?)?;
            e.file_type().ok()?.is_dir().then(|| (first, e.path()))
        })
        .collect();
    out.sort();
    out
}
