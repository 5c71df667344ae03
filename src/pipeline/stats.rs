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

    /// The counters now.
    pub fn snapshot(&self) -> SensorTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SensorTotals {
            captured: get(&self.captured),
            dropped: get(&self.dropped),
            inferred: get(&self.inferred),
            errors: get(&self.errors),
            reconnects: get(&self.reconnects),
            overruns: get(&self.overruns),
        }
    }
}

/// A copy of a sensor's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorTotals {
    /// Frames the sensor produced.
    pub captured: u64,
    /// Frames dropped by the queue's overflow policy.
    pub dropped: u64,
    /// Frames that became a stored prediction.
    pub inferred: u64,
    /// Bad inputs skipped.
    pub errors: u64,
    /// Failed attempts to open or reopen the device.
    pub reconnects: u64,
    /// Data lost inside the source before it became a frame.
    pub overruns: u64,
}
