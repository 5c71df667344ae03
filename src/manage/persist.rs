//! Files replaced whole, so that a crash or power cut leaves either the old or the new content.

use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content: a
/// temporary file beside it, fsync, rename, fsync of the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

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
