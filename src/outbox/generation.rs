//! One generation of the outbox: a sled database of its own in `gen-{first seq, hex}`.
//!
//! Records are written to the newest generation only; older ones only lose records (delivered,
//! dropped, expired) and are deleted whole once empty. Deleting a directory is the one way to get
//! sled's space back for sure: under insert-then-delete it reclaims only part of it by itself.
//!
//! Keys are `[priority u8][seq u64 BE]`, so a range scan yields one priority's records oldest first.
//!
//! A generation's counts (records, bytes, records per priority) are kept in memory whether or not
//! its database is open: an open sled database costs memory (page cache, page table, I/O
//! buffers), so only the generations in use are kept open (see [`super::generations`]).

use super::envelope::{self, Envelope};
use super::PRIORITIES;
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

/// How a generation's sled database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DbSettings {
    /// sled page cache of this database.
    pub cache_bytes: u64,
    /// zstd compression of what sled writes, for a new generation (an existing one keeps the
    /// setting it was created with: sled cannot change it).
    pub compression: bool,
}

/// How long a reopen waits for a closed generation's file lock, in milliseconds.
const LOCK_WAIT_MS: u32 = 10_000;

/// zstd level of compressed generations: the fastest, since records are small JSON that
/// compresses well at any level.
const COMPRESSION_LEVEL: i32 = 1;

/// The sled database of an open generation.
struct OpenDb {
    db: sled::Db,
    tree: sled::Tree,
}

/// A generation: its counts are always known, its database is open only while in use.
pub(super) struct Generation {
    pub dir: PathBuf,
    db: Option<OpenDb>,
    /// Records in it.
    pub records: u64,
    /// Their bytes (keys + values).
    pub bytes: u64,
    /// Records in it per priority, so that readers skip generations without any of a priority
    /// without opening them.
    pub by_priority: [u64; PRIORITIES as usize],
    /// Bytes of records written to it since it was opened (all it holds, at the first open).
    pub written: u64,
    /// Size of its files when it was closed.
    closed_disk_bytes: u64,
}

impl Generation {
    /// Opens (or creates) the generation in `dir`, counting and checking every record. A panic in
    /// sled on a damaged file is turned into an error.
    ///
    /// `create` starts a new one, which gets a header; an existing one without its header is
    /// refused, because sled opens a file it cannot make sense of as an empty database.
    pub fn open(
        dir: &Path,
        settings: DbSettings,
        create: bool,
    ) -> Result<(Self, Contents), OpenError> {
        catch_panic(|| Self::open_inner(dir, settings, create))
    }

    fn open_inner(
        dir: &Path,
        settings: DbSettings,
        create: bool,
    ) -> Result<(Self, Contents), OpenError> {
        let e = sled_error;
        let db = open_db(dir, settings)?;
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
        let mut by_priority = [0u64; PRIORITIES as usize];
        let mut damaged = Vec::new();
        for item in tree.iter() {
            let (k, v) = item.map_err(e)?;
            let Some((priority, seq)) = parse_key(&k).filter(|(p, _)| *p < PRIORITIES) else {
                damaged.push(k);
                continue;
            };
            match envelope::decode(&v) {
                Ok(Envelope {
                    sensor, ordinal, ..
                }) => {
                    records += 1;
                    bytes += (k.len() + v.len()) as u64;
                    by_priority[priority as usize] += 1;
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
                db: Some(OpenDb { db, tree }),
                records,
                bytes,
                by_priority,
                written: bytes,
                closed_disk_bytes: 0,
            },
            contents,
        ))
    }

    /// Opens the database again after [`Generation::close`], without reading it through: its
    /// counts were kept.
    pub fn reopen(&mut self, settings: DbSettings) -> Result<(), OpenError> {
        if self.db.is_some() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let mut waited = 0;
        let db = loop {
            match catch_panic(|| open_db(&dir, settings)) {
                // The flusher may still hold a handle from before the close for the length of an
                // fsync; sled's file lock refuses a second opener until it lets go.
                Err(e) if e.reason.contains("could not acquire lock") && waited < LOCK_WAIT_MS => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    waited += 1;
                }
                r => break r?,
            }
        };
        let tree = db.open_tree("records").map_err(sled_error)?;
        self.db = Some(OpenDb { db, tree });
        Ok(())
    }

    /// Writes everything to disk and closes the database, which frees its memory (page cache,
    /// page table, I/O buffers). On error it stays open.
    pub fn close(&mut self) -> Result<(), sled::Error> {
        if let Some(open) = &self.db {
            open.db.flush()?;
        }
        self.db = None;
        self.closed_disk_bytes = dir_bytes(&self.dir);
        Ok(())
    }

    /// Whether its database is open.
    pub fn is_open(&self) -> bool {
        self.db.is_some()
    }

    /// Its database, if open.
    pub fn db(&self) -> Option<&sled::Db> {
        self.db.as_ref().map(|o| &o.db)
    }

    /// Its records, if open.
    pub fn tree(&self) -> Option<&sled::Tree> {
        self.db.as_ref().map(|o| &o.tree)
    }

    /// Keeps the counts in step with a record of `size` bytes stored at `priority`.
    pub fn count_insert(&mut self, priority: u8, size: u64) {
        self.records += 1;
        self.bytes += size;
        self.written += size;
        if let Some(n) = self.by_priority.get_mut(priority as usize) {
            *n += 1;
        }
    }

    /// Keeps the counts in step with a record of `size` bytes removed from `priority`.
    pub fn count_remove(&mut self, priority: u8, size: u64) {
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
        if let Some(n) = self.by_priority.get_mut(priority as usize) {
            *n = n.saturating_sub(1);
        }
    }

    /// Bytes of its files on disk (as of its close while closed: nothing writes to it then).
    pub fn disk_bytes(&self) -> u64 {
        if self.db.is_some() {
            dir_bytes(&self.dir)
        } else {
            self.closed_disk_bytes
        }
    }
}

fn sled_error(e: sled::Error) -> OpenError {
    OpenError {
        damaged: !matches!(e, sled::Error::Io(_)),
        reason: e.to_string(),
    }
}

/// Runs `f`, turning a panic in sled (on a damaged file) into an error.
fn catch_panic<T>(f: impl FnOnce() -> Result<T, OpenError>) -> Result<T, OpenError> {
    match catch_unwind(AssertUnwindSafe(f)) {
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

/// Opens the sled database in `dir`: with compression if it was created with it, or, if it is
/// new, if `settings` ask for it.
fn open_db(dir: &Path, settings: DbSettings) -> Result<sled::Db, OpenError> {
    let compression = created_compressed(dir).unwrap_or(settings.compression);
    sled::Config::new()
        .path(dir)
        .cache_capacity(settings.cache_bytes)
        .flush_every_ms(None)
        .use_compression(compression)
        .compression_factor(COMPRESSION_LEVEL)
        .open()
        .map_err(sled_error)
}

/// Whether the database in `dir` was created with compression, from the storage parameters sled
/// keeps in its `conf` file (it refuses to open a database with others); `None` if there is no
/// such file yet.
fn created_compressed(dir: &Path) -> Option<bool> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("use_compression: "))
        .map(|v| v.trim() == "true")
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
