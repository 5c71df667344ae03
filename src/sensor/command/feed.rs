//! The thread that reads a command's standard output, cuts it into frames and hands them to the
//! sensor thread.
//!
//! Overflow policy: the reader never waits for the sensor thread, so the command never blocks on
//! a full pipe. It keeps one slot for the newest frame; a frame not yet taken when the next one is
//! complete is replaced (latest wins, as for a camera) and counted as an overrun. Skipped
//! stretches wait in a short list of their own (at most [`MAX_SKIPPED`]; more are not reported),
//! so they are counted as bad items even when frames come faster than they are taken.

use super::split::{Cut, Splitter};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::process::ChildStdout;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes read from the pipe at most per call.
const READ_CHUNK: usize = 64 * 1024;
/// Skipped stretches waiting to be reported, at most.
const MAX_SKIPPED: usize = 64;

/// What the sensor thread gets next.
#[derive(Debug)]
pub enum Event {
    /// The newest whole frame.
    Frame(Vec<u8>),
    /// Bytes that were not a frame were dropped.
    Skipped(String),
    /// The output ended (closed, or a read error); every frame before it was handed out.
    Ended(String),
    /// Nothing new within the wait; the output has been silent for this long.
    Quiet(Duration),
}

/// The receiving end of one run's reader thread.
pub struct Feed {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    latest: Option<Vec<u8>>,
    skipped: VecDeque<String>,
    /// Frames replaced before they were taken, not yet reported.
    replaced: u64,
    /// When the last bytes arrived (or the reader started).
    last_bytes: Instant,
    ended: Option<String>,
    /// The feed was dropped: the reader stops at its next read.
    abandoned: bool,
}

impl Feed {
    /// Starts a thread named `name` reading `stdout` through `splitter`.
    pub fn start(stdout: ChildStdout, splitter: Splitter, name: String) -> std::io::Result<Feed> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                latest: None,
                skipped: VecDeque::new(),
                replaced: 0,
                last_bytes: Instant::now(),
                ended: None,
                abandoned: false,
            }),
            changed: Condvar::new(),
        });
        let reader = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || read(stdout, splitter, &reader))?;
        Ok(Feed { shared })
    }

    /// The next event, waiting at most `timeout` for one.
    pub fn next(&self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(message) = state.skipped.pop_front() {
                return Event::Skipped(message);
            }
            if let Some(frame) = state.latest.take() {
                return Event::Frame(frame);
            }
            if let Some(why) = &state.ended {
                return Event::Ended(why.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Event::Quiet(now - state.last_bytes);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Frames replaced before they were taken since the last call.
    pub fn take_replaced(&self) -> u64 {
        std::mem::take(&mut self.shared.lock().replaced)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.lock().abandoned = true;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole: consistent even after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reader thread: until the output ends or the feed is dropped.
fn read(mut stdout: ChildStdout, mut splitter: Splitter, shared: &Shared) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut cuts = Vec::new();
    let ended = loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break "closed its output".to_string(),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break format!("reading its output failed: {e}"),
        };
        splitter.feed(&buf[..n], &mut cuts);
        let mut state = shared.lock();
        if state.abandoned {
            return;
        }
        state.last_bytes = Instant::now();
        for cut in cuts.drain(..) {
            match cut {
                Cut::Frame(frame) => {
                    if state.latest.replace(frame).is_some() {
                        state.replaced += 1;
                    }
                }
                Cut::Skipped(message) if state.skipped.len() < MAX_SKIPPED => {
                    state.skipped.push_back(message)
                }
                Cut::Skipped(_) => {}
            }
        }
        drop(state);
        shared.changed.notify_one();
    };
    shared.lock().ended = Some(ended);
    shared.changed.notify_one();
}
