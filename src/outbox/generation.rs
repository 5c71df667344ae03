//! One generation of the outbox: a sled database of its own in `gen-{first seq, hex}`.
//!
//! Records are written to the newest generation only; older ones only lose records (delivered,
//! dropped, expired) and are deleted whole once empty. Deleting a directory is the one way to get
//! sled's space back for sure: under insert-then-delete it reclaims only part of it by itself.
//!
//! Keys are `[priority u8][seq u64 BE]`, so a range scan yields one priority's records oldest first.

use super::envelope::{self, Envelope};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Key of the header written when a generation is created.
const HEADER_KEY: &[u8] = b"edgeinfer-outbox";

/// Length of a key.
pub(super) const KEY_LEN: usize = 9;

/// A record's key.
pub(super) fn key(priority: u8, seq: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[0] = priority;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `(priority, seq)` of a key, if it is one.
pub(super) fn parse_key(k: &[u8]) -> Option<(u8, u64)> {
    let seq: [u8; 8] = k.get(1..KEY_LEN)?.try_into().ok()?;
    (k.len() == KEY_LEN).then(|| (k[0], u64::from_be_bytes(seq)))
}

/// Directory name of the generation whose first record is `first_seq`.
pub(super) fn dir_name(first_seq: u64) -> String {
    format!("gen-{first_seq:016x}")
}

/// The first seq of a generation directory, if `name` is one.
pub(super) fn parse_dir_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("gen-")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Why a generation could not be opened.
#[derive(Debug)]
pub(super) struct OpenError {
    pub reason: String,
    /// The files are damaged (quarantine them), rather than unreadable right now (I/O error,
    /// disk full: leave them for later).
    pub damaged: bool,
}

impl OpenError {
    fn damaged(reason: String) -> Self {
        Self {
            reason,
            damaged: true,
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What was found in a generation when it was opened.
#[derive(Default)]
pub(super) struct Contents {
    /// Highest seq stored.
    pub max_seq: Option<u64>,
    /// Highest ordinal stored per sensor.
    pub max_ordinal: HashMap<String, u64>,
    /// Records that failed their checksum (removed).
    pub damaged: u64,
}

/// An open generation.
pub(super) struct Generation {
    pub dir: PathBuf,
    pub db: sled::Db,
    pub tree: sled::Tree,
    /// Records in it.
    pub records: u64,
    /// Their bytes (keys + values).
    pub bytes: u64,
}

impl Generation {
    /// Opens (or creates) the generation in `dir`, counting and checking every record. A panic in
    /// sled on a damaged file is turned into an error.
    ///
    /// `create` starts a new one, which gets a header; an existing one without its header is
    /// refused, because sled opens a file it cannot make sense of as an empty database.
    pub fn open(dir: &Path, cache_bytes: u64, create: bool) -> Result<(Self, Contents), OpenError> {
        let opened = catch_unwind(AssertUnwindSafe(|| {
            Self::open_inner(dir, cache_bytes, create)
        }));
        match opened {
            Ok(r) => r,
            Err(panic) => Err(OpenError::damaged(
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .map_or_else(
                        || "sled panicked".to_string(),
                        |m| format!("sled panicked: {m}"),
                    ),
            )),
        }
    }

    fn open_inner(
        dir: &Path,
        cache_bytes: u64,
        create: bool,
    ) -> Result<(Self, Contents), OpenError> {
        let e = |e: sled::Error| OpenError {
            damaged: !matches!(e, sled::Error::Io(_)),
            reason: e.to_string(),
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(e)?;
        let header = db.open_tree("generation").map_err(e)?;
        if create {
            header.insert(HEADER_KEY, &[1u8][..]).map_err(e)?;
            db.flush().map_err(e)?;
        } else if header.get(HEADER_KEY).map_err(e)?.is_none() {
            return Err(OpenError::damaged(
                "not a readable outbox generation (its header is missing)".into(),
            ));
        }
        let tree = db.open_tree("records").map_err(e)?;
        let mut contents = Contents::default();
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut damaged = Vec::new();
        for item in tree.iter() {
            let (k, v) = item.map_err(e)?;
            let Some((_, seq)) = parse_key(&k) else {
                damaged.push(k);
                continue;
            };
            match envelope::decode(&v) {
                Ok(Envelope {
                    sensor, ordinal, ..
                }) => {
                    records += 1;
                    bytes += (k.len() + v.len()) as u64;
                    contents.max_seq = contents.max_seq.max(Some(seq));
                    let max = contents.max_ordinal.entry(sensor).or_insert(0);
                    *max = (*max).max(ordinal);
                }
                Err(_) => damaged.push(k),
            }
        }
        contents.damaged = damaged.len() as u64;
        for k in damaged {
            tree.remove(k).map_err(e)?;
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                db,
                tree,
                records,
                bytes,
            },
            contents,
        ))
    }

    /// Bytes of its files on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_priority_then_seq() {
        assert!(key(0, u64::MAX) < key(1, 0));
        assert!(key(1, 255) < key(1, 256));
        assert_eq!(parse_key(&key(2, 77)), Some((2, 77)));
        assert_eq!(parse_key(&[1, 2, 3]), None);
        assert_eq!(parse_dir_name(&dir_name(0xabc)), Some(0xabc));
        assert_eq!(parse_dir_name("gen-xyz"), None);
        assert_eq!(parse_dir_name("meta"), None);
    }
}
