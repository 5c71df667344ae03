//! The configuration file replaced by a remote command, its previous version kept beside it.

use crate::durable::write_atomically;
use std::path::{Path, PathBuf};

/// Replaces the config file at `path` with `text`, keeping the current one as `{path}.prev`.
/// Returns where the previous version went.
pub fn replace_config(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    let mut prev = path.as_os_str().to_os_string();
    prev.push(".prev");
    let prev = PathBuf::from(prev);
    // The previous version is safe on disk before the current one is replaced.
    let current = std::fs::read(path)?;
    write_atomically(&prev, &current)?;
    write_atomically(path, text.as_bytes())?;
    Ok(prev)
}
