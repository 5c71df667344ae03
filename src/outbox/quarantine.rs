//! Moving a damaged part of the store aside, so the daemon starts with a fresh one and the old
//! files are kept for inspection under `quarantine/`.

use std::path::Path;
use std::time::SystemTime;
use tracing::error;

/// Moves `what` (a file or directory inside the outbox `dir`) to `dir/quarantine/{name}-{unix s}`.
/// If even that fails, deletes it, so the daemon can still start.
pub(super) fn move_aside(dir: &Path, what: &Path, reason: &str) {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = what
        .file_name()
        .map_or_else(|| "unknown".into(), |n| n.to_string_lossy().into_owned());
    let qdir = dir.join("quarantine");
    let mut target = qdir.join(format!("{name}-{secs}"));
    let mut n = 1;
    while target.exists() {
        target = qdir.join(format!("{name}-{secs}-{n}"));
        n += 1;
    }
    let moved = std::fs::create_dir_all(&qdir).and_then(|_| std::fs::rename(what, &target));
    match moved {
        Ok(()) => error!(
            damaged = %what.display(),
            moved_to = %target.display(),
            reason,
            "Outbox store damaged: moved aside, starting without it"
        ),
        Err(e) => {
            let removed = if what.is_dir() {
                std::fs::remove_dir_all(what)
            } else {
                std::fs::remove_file(what)
            };
            error!(
                damaged = %what.display(),
                reason,
                move_error = %e,
                removed = removed.is_ok(),
                "Outbox store damaged and could not be moved aside: deleted, starting without it"
            );
        }
    }
}
