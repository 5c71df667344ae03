//! Per-sensor counters and newest result, shared between the sensor thread, its queue and the
//! worker.

use super::latest::LatestSlot;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one sensor since start-up, and its newest result.
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
    /// Times the device had to be opened again: each loss (a reopen cycle, even when the first
    /// attempt succeeds) and each failed attempt to open or reopen it.
    pub reconnects: AtomicU64,
    /// Data lost inside the source before it became a frame (audio samples the callback could
    /// not buffer, serial bytes skipped to get back in step), in the source's own units.
    pub overruns: AtomicU64,
    /// The newest stored prediction, in brief.
    pub latest: LatestSlot,
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

/// A copy of a sensor's counters at one moment (serialised as the `totals` of a sensor's
/// telemetry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SensorTotals {
    /// Frames the sensor produced.
    pub captured: u64,
    /// Frames dropped by the queue's overflow policy.
    pub dropped: u64,
    /// Frames that became a stored prediction.
    pub inferred: u64,
    /// Bad inputs skipped.
    pub errors: u64,
    /// Reopen cycles after a loss, and failed attempts to open or reopen the device.
    pub reconnects: u64,
    /// Data lost inside the source before it became a frame.
    pub overruns: u64,
}

/// Most recent inference latencies of one model, for percentiles in telemetry. A ring of fixed
/// size: when full, the oldest sample is overwritten, so memory stays bounded between reads.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    samples: std::sync::Mutex<LatencyRing>,
}

#[derive(Debug, Default)]
struct LatencyRing {
    values: Vec<u64>,
    next: usize,
    errors: u64,
}

/// Samples kept between two reads of a `LatencyWindow`.
const LATENCY_SAMPLES: usize = 4096;

/// Latency percentiles over the samples of one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LatencySummary {
    /// Samples the percentiles are taken over (at most the window size).
    pub samples: usize,
    /// Median, in microseconds.
    pub p50_us: u64,
    /// 99th percentile, in microseconds.
    pub p99_us: u64,
    /// Largest, in microseconds.
    pub max_us: u64,
    /// Runs that failed in the period.
    pub errors: u64,
}

impl LatencyWindow {
    fn lock(&self) -> std::sync::MutexGuard<'_, LatencyRing> {
        // Plain numbers: consistent even after a panic elsewhere.
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one successful run.
    pub fn record(&self, micros: u64) {
        let mut ring = self.lock();
        if ring.values.len() < LATENCY_SAMPLES {
            ring.values.push(micros);
        } else {
            let at = ring.next;
            ring.values[at] = micros;
        }
        ring.next = (ring.next + 1) % LATENCY_SAMPLES;
    }

    /// Records one failed run.
    pub fn record_error(&self) {
        self.lock().errors += 1;
    }

    /// Percentiles of the samples since the last call, which are then forgotten; `None` when
    /// there were none.
    pub fn take(&self) -> Option<LatencySummary> {
        let (mut values, errors) = {
            let mut ring = self.lock();
            let errors = std::mem::take(&mut ring.errors);
            ring.next = 0;
            (std::mem::take(&mut ring.values), errors)
        };
        if values.is_empty() && errors == 0 {
            return None;
        }
        values.sort_unstable();
        let at = |q: f64| {
            values
                .get(((values.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        Some(LatencySummary {
            samples: values.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: values.last().copied().unwrap_or(0),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::LatencyWindow;

    #[test]
    fn latency_percentiles_cover_the_period_since_the_last_read() {
        let w = LatencyWindow::default();
        assert_eq!(w.take(), None);
        for us in 1..=100 {
            w.record(us);
        }
        w.record_error();
        let s = w.take().unwrap();
        assert_eq!(
            (s.samples, s.p50_us, s.p99_us, s.max_us, s.errors),
            (100, 51, 99, 100, 1)
        );
        assert_eq!(w.take(), None);
        for _ in 0..10_000 {
            w.record(7);
        }
        assert_eq!(w.take().unwrap().samples, 4096);
    }
}
