//! Progress of an inference worker, as the systemd watchdog sees it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// When the worker started the frame it is on (or that it is idle, waiting for input).
#[derive(Debug, Default)]
pub struct Heartbeat {
    /// Milliseconds since `epoch()` + 1 when the current frame started; 0 while idle.
    busy_since: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Heartbeat {
    /// The worker took a frame.
    pub fn busy(&self) {
        let ms = epoch().elapsed().as_millis() as u64 + 1;
        self.busy_since.store(ms, Ordering::Relaxed);
    }

    /// The worker finished a frame (stored, skipped or refused) and waits for the next.
    pub fn idle(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// How long the worker has been on its current frame; `None` while it waits for input.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = epoch().elapsed().as_millis() as u64 + 1;
                Some(Duration::from_millis(now.saturating_sub(since)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_has_no_age_and_busy_ages() {
        let h = Heartbeat::default();
        assert_eq!(h.busy_for(), None);
        h.busy();
        std::thread::sleep(Duration::from_millis(30));
        assert!(h.busy_for().unwrap() >= Duration::from_millis(25));
        h.idle();
        assert_eq!(h.busy_for(), None);
    }
}
