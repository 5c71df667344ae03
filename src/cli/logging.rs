//! Where log records go: the systemd journal, natively, when the daemon runs as a service whose
//! stderr is connected to it; text on stderr everywhere else.
//!
//! systemd sets `JOURNAL_STREAM` to the device and inode of the stream it connected stdout and
//! stderr to; when it names our stderr, records go to journald's socket instead, each with its
//! `PRIORITY` (ERROR 3, WARN 4, INFO 6, DEBUG and TRACE 7), its fields as journal fields
//! (`SENSOR=`, `MODEL=`, ...), `DEVICE=` once the config is loaded, and
//! `SYSLOG_IDENTIFIER=edgeinfer`: `journalctl -u edgeinfer -p warning` and
//! `journalctl -u edgeinfer SENSOR=cam0` work. This is systemd's documented check, so stderr
//! redirected to a file or a terminal under systemd still gets text.

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

/// The journal layer, replaceable so that the device id can be added once it is known.
static JOURNAL: OnceLock<reload::Handle<tracing_journald::Layer, Registry>> = OnceLock::new();

/// Sets up logging for the whole process (`RUST_LOG` filters; `info` by default).
pub fn init() {
    let (filter, filter_error) = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let warn_filter = |error: Option<String>| {
        if let Some(e) = error {
            tracing::warn!(error = %e, "RUST_LOG is not a list of [target=]level; logging at info");
        }
    };
    let journal_error = if stderr_is_journal() {
        match journal_layer(None) {
            Ok(layer) => {
                let (layer, handle) = reload::Layer::new(layer);
                tracing_subscriber::registry()
                    .with(layer)
                    .with(filter)
                    .init();
                let _ = JOURNAL.set(handle);
                warn_filter(filter_error);
                return;
            }
            Err(e) => Some(e),
        }
    } else {
        None
    };
    use std::io::IsTerminal;
    let text = tracing_subscriber::fmt::layer()
        .with_writer(|| super::progress::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    tracing_subscriber::registry()
        .with(text)
        .with(filter)
        .init();
    warn_filter(filter_error);
    if let Some(e) = journal_error {
        tracing::warn!(error = %e, "stderr is the journal's, but its socket cannot be opened; logging text to stderr");
    }
}

/// The filter `RUST_LOG` names: comma-separated `target=level` directives and an optional bare
/// default level, as in `warn,edgeinfer::outbox=debug` (tracing's `Targets`; span and field
/// filters are not supported). `info` when unset or unparsable, with the parse error.
fn filter_from(spec: Option<&str>) -> (Targets, Option<String>) {
    let info = || Targets::new().with_default(tracing::Level::INFO);
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => (info(), None),
        Some(spec) => match spec.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (info(), Some(format!("{spec:?}: {e}"))),
        },
    }
}

/// Adds `DEVICE={id}` to every journal record from now on; nothing when logging to stderr.
pub fn set_device(id: &str) {
    let Some(handle) = JOURNAL.get() else {
        return;
    };
    match journal_layer(Some(id)) {
        Ok(layer) => {
            let _ = handle.reload(layer);
        }
        Err(e) => tracing::warn!(error = %e, "Journal records go on without DEVICE"),
    }
}

fn journal_layer(device: Option<&str>) -> std::io::Result<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    // syslog's meanings: INFO is informational (6), not notice; DEBUG and TRACE are debug (7).
    let priorities = PriorityMappings {
        info: Priority::Informational,
        debug: Priority::Debug,
        ..PriorityMappings::new()
    };
    let layer = tracing_journald::layer()?
        .with_priority_mappings(priorities)
        .with_field_prefix(None)
        .with_syslog_identifier("edgeinfer".into());
    Ok(match device {
        Some(id) => layer.with_custom_fields([("DEVICE", id)]),
        None => layer,
    })
}

/// True when `JOURNAL_STREAM` (`device:inode`) names the stream stderr is.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", stderr.dev(), stderr.ino()))
}

#[cfg(test)]
mod tests {
    use super::filter_from;
    use tracing::Level;

    #[test]
    fn rust_log_directives_set_levels_per_target() {
        let (f, error) = filter_from(Some("warn,edgeinfer::outbox=debug"));
        assert!(error.is_none());
        assert!(f.would_enable("edgeinfer::outbox::durable", &Level::DEBUG));
        assert!(!f.would_enable("edgeinfer::pipeline", &Level::INFO));
        assert!(f.would_enable("edgeinfer::pipeline", &Level::WARN));
    }

    #[test]
    fn unset_or_unparsable_rust_log_means_info() {
        let (f, error) = filter_from(None);
        assert!(error.is_none());
        assert!(f.would_enable("edgeinfer", &Level::INFO));
        assert!(!f.would_enable("edgeinfer", &Level::DEBUG));
        let (f, error) = filter_from(Some("edgeinfer=loud"));
        assert!(error.unwrap().contains("edgeinfer=loud"));
        assert!(f.would_enable("edgeinfer", &Level::INFO));
    }
}
