//! A command's standard error, forwarded to the log line by line and rate-limited per sensor, so
//! that a chatty or crash-looping program cannot flood the journal.

use std::io::{ErrorKind, Read};
use std::process::ChildStderr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::info;

/// Lines logged at most per window; the rest are counted and reported in one line.
const MAX_LINES: u32 = 10;
/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(10);
/// Longest line logged; the rest of a longer one is cut off.
const MAX_LINE: usize = 512;

/// At most [`MAX_LINES`] lines per [`WINDOW`], shared by every run of one sensor's command.
#[derive(Debug, Default)]
pub struct RateLimit {
    window_start: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
struct Admit {
    /// Lines suppressed in the window that just ended, to report first.
    report: Option<u64>,
    /// Whether to log the line.
    show: bool,
}

impl RateLimit {
    fn admit(&mut self, now: Instant) -> Admit {
        let mut report = None;
        if self.window_start.is_none_or(|s| now >= s + WINDOW) {
            report = self.take_suppressed();
            self.window_start = Some(now);
            self.shown = 0;
        }
        let show = self.shown < MAX_LINES;
        if show {
            self.shown += 1;
        } else {
            self.suppressed += 1;
        }
        Admit { report, show }
    }

    fn take_suppressed(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
    }
}

/// Starts a thread named `name` that logs each line of `stderr` for `sensor` until it closes, then
/// reports what the rate limit still holds back.
pub fn forward(
    stderr: ChildStderr,
    sensor: String,
    program: String,
    limit: Arc<Mutex<RateLimit>>,
    name: String,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        let log = |line: &str| {
            let mut limit = limit.lock().unwrap_or_else(|p| p.into_inner());
            let admit = limit.admit(Instant::now());
            drop(limit);
            if let Some(n) = admit.report {
                info!(sensor = %sensor, program = %program, suppressed = n, "Command stderr lines suppressed");
            }
            if admit.show {
                info!(sensor = %sensor, program = %program, line, "Command stderr");
            }
        };
        read_lines(stderr, log);
        let left = limit.lock().unwrap_or_else(|p| p.into_inner()).take_suppressed();
        if let Some(n) = left {
            info!(sensor = %sensor, program = %program, suppressed = n, "Command stderr lines suppressed");
        }
    })
}

/// Calls `line` with each non-empty line of `input` (ended by `\n` or `\r`, as progress lines
/// are), cut to [`MAX_LINE`] bytes and decoded lossily, until it closes.
fn read_lines(mut input: impl Read, mut line: impl FnMut(&str)) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::with_capacity(MAX_LINE);
    let mut flush = |pending: &mut Vec<u8>| {
        if !pending.is_empty() {
            line(String::from_utf8_lossy(pending).trim_end());
            pending.clear();
        }
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &byte in &buf[..n] {
            if byte == b'\n' || byte == b'\r' {
                flush(&mut pending);
            } else if pending.len() < MAX_LINE {
                pending.push(byte);
            }
        }
    }
    flush(&mut pending);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_lines_per_window_then_one_report_of_the_rest() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        let admitted: Vec<Admit> = (0..25)
            .map(|i| limit.admit(t0 + Duration::from_millis(i)))
            .collect();
        let (shown, held_back) = admitted.split_at(10);
        let admit = |show| Admit { report: None, show };
        assert!(shown.iter().all(|a| *a == admit(true)), "{shown:?}");
        assert!(
            held_back.iter().all(|a| *a == admit(false)),
            "{held_back:?}"
        );
        let next = t0 + WINDOW + Duration::from_millis(30);
        let report = Admit {
            report: Some(15),
            show: true,
        };
        assert_eq!(limit.admit(next), report);
        assert_eq!(limit.take_suppressed(), None);
    }

    #[test]
    fn lines_end_at_either_break_and_are_cut_to_the_limit() {
        let mut long = vec![b'x'; MAX_LINE + 100];
        long.extend_from_slice(b"\nframe=1\rframe=2\r\n\nlast");
        let mut lines = Vec::new();
        read_lines(&long[..], |l| lines.push(l.to_string()));
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0], "x".repeat(MAX_LINE));
        assert_eq!(&lines[1..], ["frame=1", "frame=2", "last"]);
    }
}
