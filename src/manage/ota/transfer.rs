//! Transfers in progress, on disk so that they survive a lost connection and a restart.
//!
//! Each transfer has a folder `{data_dir}/ota/{transfer}/` holding `manifest.json`, the file
//! being assembled (`model.part`, written at each chunk's offset) and `received.json` (the chunks
//! known to be on disk). The part file is fsynced before `received.json` is replaced, so the
//! list never claims a chunk that a power cut could lose; chunks received after the last save
//! are asked for again.

use super::protocol::{self, Manifest, Progress, State};
use crate::durable::write_atomically;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The received list is saved at least this often while chunks arrive.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A chunk that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// No manifest was accepted for this transfer.
    #[error("no manifest was accepted for transfer \"{0}\"; send the manifest first")]
    UnknownTransfer(String),
    /// The chunk number is not a number.
    #[error("\"{0}\" is not a chunk number")]
    BadNumber(String),
    /// Past the last chunk.
    #[error("chunk {n} is out of range: the transfer has chunks 0 to {last}")]
    OutOfRange { n: u64, last: u32 },
    /// Not the length the manifest implies.
    #[error("chunk {n} is {got} bytes; it must be {expected}")]
    WrongLength { n: u32, got: usize, expected: usize },
    /// Writing it failed.
    #[error("cannot store chunk {n}: {message}")]
    Io { n: u32, message: String },
}

impl ChunkError {
    /// Short, stable name of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            ChunkError::UnknownTransfer(_) => "unknown_transfer",
            ChunkError::BadNumber(_) => "bad_chunk_number",
            ChunkError::OutOfRange { .. } => "chunk_out_of_range",
            ChunkError::WrongLength { .. } => "chunk_length",
            ChunkError::Io { .. } => "storage",
        }
    }
}

/// One transfer being received.
pub struct Transfer {
    /// What is being received.
    pub manifest: Manifest,
    dir: PathBuf,
    file: File,
    received: Vec<bool>,
    count: u32,
    /// Chunks written since the received list was last saved.
    unsaved: u32,
    saved_at: Instant,
    /// Chunks received since the last progress message.
    since_progress: u32,
}

impl Transfer {
    /// The file being assembled.
    pub fn part(&self) -> PathBuf {
        self.dir.join("model.part")
    }

    /// Whether every chunk is in.
    pub fn complete(&self) -> bool {
        self.count == self.manifest.chunks()
    }

    /// A progress message in `state`, with the counts and what is missing.
    pub fn progress(&self, state: State) -> Progress {
        Progress {
            received: self.count,
            chunks: self.manifest.chunks(),
            missing: protocol::missing_ranges(&self.received, protocol::MISSING_RANGES),
            ..Progress::new(&self.manifest.transfer, Some(&self.manifest.model), state)
        }
    }

    /// Writes chunk `n` (its topic level, as text). Returns whether a progress message is due.
    pub fn write_chunk(&mut self, n: &str, bytes: &[u8]) -> Result<bool, ChunkError> {
        let last = self.manifest.chunks().saturating_sub(1);
        let n: u64 = n.parse().map_err(|_| ChunkError::BadNumber(n.into()))?;
        if n > last as u64 {
            return Err(ChunkError::OutOfRange { n, last });
        }
        let n = n as u32;
        let expected = self.manifest.chunk_len(n);
        if bytes.len() != expected {
            return Err(ChunkError::WrongLength {
                n,
                got: bytes.len(),
                expected,
            });
        }
        let offset = n as u64 * self.manifest.chunk_size as u64;
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| ChunkError::Io {
                n,
                message: e.to_string(),
            })?;
        if !self.received[n as usize] {
            self.received[n as usize] = true;
            self.count += 1;
            self.unsaved += 1;
            self.since_progress += 1;
        }
        if self.complete() || self.saved_at.elapsed() >= SAVE_EVERY {
            self.save().map_err(|e| ChunkError::Io {
                n,
                message: e.to_string(),
            })?;
        }
        let due = self.since_progress >= protocol::PROGRESS_EVERY;
        if due {
            self.since_progress = 0;
        }
        Ok(due)
    }

    /// Makes the chunks written so far durable and records them.
    pub fn save(&mut self) -> std::io::Result<()> {
        if self.unsaved == 0 {
            self.saved_at = Instant::now();
            return Ok(());
        }
        self.file.sync_data()?;
        let received: Vec<bool> = self.received.iter().map(|r| !r).collect();
        let ranges = protocol::missing_ranges(&received, usize::MAX);
        let bytes = serde_json::to_vec(&ranges).unwrap_or_default();
        write_atomically(&self.dir.join("received.json"), &bytes)?;
        self.unsaved = 0;
        self.saved_at = Instant::now();
        Ok(())
    }
}

/// Every transfer in progress.
pub struct Transfers {
    dir: PathBuf,
    active: HashMap<String, Transfer>,
}

impl Transfers {
    /// The transfers left in `dir` by an earlier run, ready to resume. One that cannot be read
    /// back is deleted (its sender is told what is missing when it sends the manifest again).
    pub fn open(dir: &Path) -> Self {
        let mut active = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                match reopen(&path) {
                    Ok(t) => {
                        info!(transfer = %t.manifest.transfer, model = %t.manifest.model, received = t.count, chunks = t.manifest.chunks(), "Model transfer resumes");
                        active.insert(t.manifest.transfer.clone(), t);
                    }
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "Unreadable model transfer deleted");
                        let _ = std::fs::remove_dir_all(&path);
                    }
                }
            }
        }
        Self {
            dir: dir.to_path_buf(),
            active,
        }
    }

    /// Starts the transfer of `manifest`, or resumes it when the same file is already being
    /// received under that id. Another transfer of the same model is abandoned: one model
    /// receives one file at a time.
    pub fn begin(&mut self, manifest: Manifest) -> std::io::Result<&mut Transfer> {
        let id = manifest.transfer.clone();
        let same = self.active.get(&id).is_some_and(|t| {
            let m = &t.manifest;
            m.model == manifest.model
                && m.size == manifest.size
                && m.sha256.eq_ignore_ascii_case(&manifest.sha256)
                && m.chunk_size == manifest.chunk_size
        });
        let others: Vec<String> = self
            .active
            .iter()
            .filter(|(t, x)| {
                (**t != id && x.manifest.model == manifest.model) || (**t == id && !same)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for t in others {
            info!(transfer = %t, "Model transfer abandoned for a newer one");
            self.remove(&t);
        }
        if same {
            let t = self.active.get_mut(&id).expect("checked above");
            // The new manifest may change what happens at the end (activation, golden input).
            t.manifest = manifest;
            write_atomically(
                &t.dir.join("manifest.json"),
                &serde_json::to_vec_pretty(&t.manifest).unwrap_or_default(),
            )?;
            return Ok(t);
        }
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("model.part"))?;
        file.set_len(manifest.size)?;
        write_atomically(&dir.join("received.json"), b"[]")?;
        write_atomically(
            &dir.join("manifest.json"),
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )?;
        let chunks = manifest.chunks() as usize;
        let t = Transfer {
            manifest,
            dir,
            file,
            received: vec![false; chunks],
            count: 0,
            unsaved: 0,
            saved_at: Instant::now(),
            since_progress: 0,
        };
        Ok(self.active.entry(id).or_insert(t))
    }

    /// The transfer `id`, if one is in progress.
    pub fn get(&mut self, id: &str) -> Option<&mut Transfer> {
        self.active.get_mut(id)
    }

    /// Takes a transfer out (to verify it); its folder stays until `remove`.
    pub fn take(&mut self, id: &str) -> Option<Transfer> {
        self.active.remove(id)
    }

    /// Forgets a transfer and deletes its folder.
    pub fn remove(&mut self, id: &str) {
        self.active.remove(id);
        delete(&self.dir.join(id));
    }

    /// Where each transfer in progress stands, to tell senders after a reconnection.
    pub fn pending(&self) -> Vec<Progress> {
        self.active
            .values()
            .map(|t| t.progress(State::Receiving))
            .collect()
    }

    /// Saves every transfer's received list (at shutdown).
    pub fn save_all(&mut self) {
        for t in self.active.values_mut() {
            if let Err(e) = t.save() {
                warn!(transfer = %t.manifest.transfer, error = %e, "Cannot save model transfer progress");
            }
        }
    }
}

/// Deletes a transfer's folder (after it was installed or refused).
pub fn delete(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(path = %dir.display(), error = %e, "Cannot delete model transfer folder");
        }
    }
}

fn reopen(dir: &Path) -> Result<Transfer, String> {
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let manifest: Manifest = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| format!("manifest.json: {e}"))?;
    if dir.file_name().and_then(|n| n.to_str()) != Some(manifest.transfer.as_str()) {
        return Err("manifest.json is of another transfer".into());
    }
    let ranges: Vec<[u32; 2]> = serde_json::from_slice(&read("received.json")?)
        .map_err(|e| format!("received.json: {e}"))?;
    let file = File::options()
        .read(true)
        .write(true)
        .open(dir.join("model.part"))
        .map_err(|e| format!("model.part: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len != manifest.size {
        return Err(format!(
            "model.part is {len} bytes, the manifest says {}",
            manifest.size
        ));
    }
    let chunks = manifest.chunks() as usize;
    let mut received = vec![false; chunks];
    for [a, b] in ranges {
        if a > b || b as usize >= chunks {
            return Err(format!("received.json: range {a}..={b} out of 0..{chunks}"));
        }
        received[a as usize..=b as usize].fill(true);
    }
    let count = received.iter().filter(|r| **r).count() as u32;
    Ok(Transfer {
        manifest,
        dir: dir.to_path_buf(),
        file,
        received,
        count,
        unsaved: 0,
        saved_at: Instant::now(),
        since_progress: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::ota::protocol::Activation;

    fn manifest(size: u64) -> Manifest {
        Manifest {
            transfer: "t1".into(),
            model: "m".into(),
            label: None,
            size,
            sha256: "0".repeat(64),
            chunk_size: 1024,
            activate: Activation::Active,
            golden: None,
        }
    }

    #[test]
    fn a_transfer_resumes_after_a_restart_with_only_what_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Transfers::open(dir.path());
        let t = all.begin(manifest(4000)).unwrap();
        t.write_chunk("0", &[1; 1024]).unwrap();
        t.write_chunk("3", &[4; 928]).unwrap();
        t.save().unwrap();
        // Within a second of the last save and not the last chunk: not saved, so lost if the
        // daemon dies now.
        t.write_chunk("1", &[2; 1024]).unwrap();
        assert_eq!(t.progress(State::Receiving).received, 3);
        drop(all);
        let mut again = Transfers::open(dir.path());
        let t = again.get("t1").unwrap();
        assert_eq!(t.progress(State::Receiving).missing, vec![[1, 2]]);
        t.write_chunk("1", &[2; 1024]).unwrap();
        t.write_chunk("2", &[3; 1024]).unwrap();
        assert!(t.complete());
        let bytes = std::fs::read(t.part()).unwrap();
        assert_eq!(
            (bytes[0], bytes[1024], bytes[2048], bytes[3999]),
            (1, 2, 3, 4)
        );
    }

    #[test]
    fn bad_chunks_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Transfers::open(dir.path());
        let t = all.begin(manifest(3000)).unwrap();
        assert_eq!(
            t.write_chunk("3", &[0; 10]).unwrap_err().code(),
            "chunk_out_of_range"
        );
        assert_eq!(
            t.write_chunk("x", &[0; 10]).unwrap_err().code(),
            "bad_chunk_number"
        );
        assert_eq!(
            t.write_chunk("-1", &[0; 10]).unwrap_err().code(),
            "bad_chunk_number"
        );
        assert_eq!(
            t.write_chunk("2", &[0; 1024]).unwrap_err().code(),
            "chunk_length"
        );
        assert_eq!(t.progress(State::Receiving).received, 0);
    }

    #[test]
    fn the_same_file_resumes_and_another_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Transfers::open(dir.path());
        all.begin(manifest(3000))
            .unwrap()
            .write_chunk("0", &[1; 1024])
            .unwrap();
        assert_eq!(
            all.begin(manifest(3000))
                .unwrap()
                .progress(State::Receiving)
                .received,
            1
        );
        let mut other = manifest(3000);
        other.sha256 = "1".repeat(64);
        assert_eq!(
            all.begin(other)
                .unwrap()
                .progress(State::Receiving)
                .received,
            0
        );
        let mut next = manifest(2000);
        next.transfer = "t2".into();
        all.begin(next).unwrap();
        assert!(all.get("t1").is_none(), "one transfer per model");
        assert!(!dir.path().join("t1").exists());
    }
}
