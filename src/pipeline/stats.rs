//! Per-sensor counters, shared between the sensor thread, its queue and the worker.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one sensor since start-up.
#[derive(Debug, Default)]
pub struct SensorStats {
    /// Frames the sensor produced.
    pub captured: AtomicU64,
    /// Frames dropped by the queue's overflow policy.
    pub dropped: AtomicU64,
    /// Frames that became a stored prediction.
    pub inferred: AtomicU64,
    /// Frames or inputs that failed (bad file, bad line, inference error) and were skipped.
    pub errors: AtomicU64,
    /// Failed attempts to open or reopen the sensor's device.
    pub reconnects: AtomicU64,
    /// Data lost inside the source before it became a frame (audio samples the callback could
    /// not buffer, serial bytes skipped to get back in step), in the source's own units.
    pub overruns: AtomicU64,
}

impl SensorStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (captured, dropped, inferred, errors).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.captured.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.inferred.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}
