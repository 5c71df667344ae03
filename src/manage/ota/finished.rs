//! Transfers past verification, remembered so that a sender that sends the manifest again is
//! told where its transfer stands instead of starting over.

use super::protocol::Progress;
use std::path::PathBuf;
use tracing::warn;

/// Transfers past verification, most recent last; a JSON file replaced atomically.
pub(super) struct Finished {
    file: PathBuf,
    /// (sha256, last progress), at most `FINISHED_KEPT`.
    entries: Vec<(String, Progress)>,
}

/// Finished transfers remembered.
const FINISHED_KEPT: usize = 32;

impl Finished {
    pub(super) fn open(file: PathBuf) -> Self {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self { file, entries }
    }

    fn save(&self) {
        let bytes = serde_json::to_vec_pretty(&self.entries).unwrap_or_default();
        if let Err(e) = crate::durable::write_atomically(&self.file, &bytes) {
            warn!(path = %self.file.display(), error = %e, "Cannot record finished model transfers");
        }
    }

    /// Where transfer `id` of the file `sha256` stands, if it finished.
    pub(super) fn get(&self, id: &str, sha256: &str) -> Option<Progress> {
        self.entries
            .iter()
            .find(|(sha, p)| p.transfer == id && sha.eq_ignore_ascii_case(sha256))
            .map(|(_, p)| p.clone())
    }

    pub(super) fn entry(&self, id: &str) -> Option<Progress> {
        self.entries
            .iter()
            .find(|(_, p)| p.transfer == id)
            .map(|(_, p)| p.clone())
    }

    pub(super) fn put(&mut self, sha256: &str, progress: Progress) {
        self.entries
            .retain(|(_, p)| p.transfer != progress.transfer);
        self.entries.push((sha256.to_ascii_lowercase(), progress));
        if self.entries.len() > FINISHED_KEPT {
            self.entries.remove(0);
        }
        self.save();
    }

    pub(super) fn update(&mut self, id: &str, progress: Progress) {
        if let Some(e) = self.entries.iter_mut().find(|(_, p)| p.transfer == id) {
            e.1 = progress;
            self.save();
        }
    }
}
