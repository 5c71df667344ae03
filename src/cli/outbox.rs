//! `edgeinfer outbox stats|peek|export|purge`: inspect or empty a device's outbox while the daemon
//! is stopped (the outbox's lock refuses it while a daemon has it open).

use super::load_config;
use crate::config::OutboxConfig;
use crate::outbox::{Outbox, StoredRecord};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(super) struct OutboxArgs {
    /// The daemon's config file: its data dir and `[outbox]` settings are used.
    #[arg(long, short, conflicts_with = "dir", required_unless_present = "dir")]
    config: Option<PathBuf>,
    /// The outbox directory itself (`{data_dir}/outbox`), with default `[outbox]` settings.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Size, age of the oldest record and lifetime counters, as JSON.
    Stats,
    /// The next records to be sent, as JSON lines.
    Peek {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// Every waiting record, as JSON lines, in sending order (to a file or stdout).
    Export {
        /// Output file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete every waiting record (counted as `purged`).
    Purge {
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

pub(super) fn run(args: &OutboxArgs) -> ExitCode {
    let (dir, config) = match (&args.config, &args.dir) {
        (Some(path), _) => match load_config(path) {
            Ok(c) => (c.outbox_dir(), c.outbox),
            Err(code) => return code,
        },
        (None, Some(dir)) => (dir.clone(), OutboxConfig::default()),
        (None, None) => return ExitCode::from(super::EXIT_CONFIG),
    };
    if !dir.is_dir() {
        eprintln!("no outbox at {}", dir.display());
        return ExitCode::FAILURE;
    }
    let outbox = match Outbox::open(&dir, &config) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.action {
        Action::Stats => serde_json::to_string_pretty(&outbox.stats())
            .map_err(|e| e.to_string())
            .map(|s| println!("{s}")),
        Action::Peek { count } => write_records(&outbox, Some(*count), None),
        Action::Export { out } => write_records(&outbox, None, out.as_ref()),
        Action::Purge { yes: false } => Err("purge deletes every waiting record: add --yes".into()),
        Action::Purge { yes: true } => outbox
            .purge()
            .map(|n| println!("purged {n} record(s) from {}", dir.display()))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes records as JSON lines; `limit` caps how many.
fn write_records(
    outbox: &Outbox,
    limit: Option<usize>,
    out: Option<&PathBuf>,
) -> Result<(), String> {
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut written = 0usize;
    let mut failed = None;
    outbox
        .for_each_record(|r| {
            if limit.is_some_and(|l| written >= l) {
                return false;
            }
            if let Err(e) = writeln!(sink, "{}", record_json(&r)) {
                failed = Some(e.to_string());
                return false;
            }
            written += 1;
            true
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    sink.flush().map_err(|e| e.to_string())?;
    if let Some(path) = out {
        eprintln!("exported {written} record(s) to {}", path.display());
    }
    Ok(())
}

fn record_json(r: &StoredRecord) -> serde_json::Value {
    let prediction = serde_json::from_slice::<serde_json::Value>(&r.payload)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&r.payload).into()));
    let priority = ["high", "normal", "low"]
        .get(r.key.priority as usize)
        .copied()
        .unwrap_or("unknown");
    serde_json::json!({
        "seq": r.key.seq,
        "priority": priority,
        "sensor": r.sensor,
        "stored_at": (r.stored_at_ms > 0).then(|| crate::prediction::rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.stored_at_ms))),
        "prediction": prediction,
    })
}
