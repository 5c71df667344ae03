//! `LOCK` in the outbox directory: held (flock) by whoever has the outbox open, so that the
//! `outbox` subcommands refuse to touch the store of a running daemon, and two daemons cannot share
//! one data dir. The file holds the holder's pid, for the error message.

use fs2::FileExt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The held lock; released when dropped (or when the process dies).
pub(super) struct DirLock {
    _file: File,
}

/// Takes the lock, or says who holds it.
pub(super) fn acquire(dir: &Path) -> Result<DirLock, String> {
    let path = dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if file.try_lock_exclusive().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(if holder.is_empty() {
            "in use by another process".to_string()
        } else {
            format!("in use by another process (pid {holder}); stop the daemon first")
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(DirLock { _file: file })
}
