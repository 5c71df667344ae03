//! The capture loop shared by every source: pace, number, timestamp and queue frames until shutdown.

use super::{FrameSource, SensorError};
use crate::frame::Frame;
use crate::pipeline::{SensorPort, SensorStats};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How a source is driven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureSettings {
    /// Frames per second; as fast as the queue takes them when `None`.
    pub rate: Option<f64>,
    /// Rewind at the end instead of stopping.
    pub looping: bool,
}

/// Longest a sleeping sensor takes to notice shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);

/// Runs `source` until it ends, the queue closes, or `shutdown` is cancelled.
pub fn run_capture(
    sensor: Arc<str>,
    mut source: Box<dyn FrameSource>,
    settings: CaptureSettings,
    port: SensorPort,
    shutdown: CancellationToken,
) {
    let period = settings.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next_at = Instant::now();
    let mut seq = 0u64;
    let mut produced_this_pass = false;
    while !shutdown.is_cancelled() {
        let payload = match source.next_payload() {
            Ok(Some(p)) => p,
            Ok(None) => {
                if settings.looping && produced_this_pass {
                    produced_this_pass = false;
                    if let Err(e) = source.rewind() {
                        warn!(sensor = %sensor, error = %e, "Sensor stopped: cannot rewind");
                        break;
                    }
                    continue;
                }
                info!(sensor = %sensor, frames = seq, "Sensor reached the end of its input");
                break;
            }
            Err(SensorError::Item(e)) => {
                SensorStats::bump(&port.stats.errors);
                warn!(sensor = %sensor, error = %e, "Bad input skipped");
                continue;
            }
            Err(e @ SensorError::Open { .. }) => {
                warn!(sensor = %sensor, error = %e, "Sensor stopped");
                break;
            }
        };
        produced_this_pass = true;
        let frame = Frame {
            sensor: Arc::clone(&sensor),
            seq,
            captured_at: SystemTime::now(),
            payload,
        };
        seq += 1;
        SensorStats::bump(&port.stats.captured);
        if port.push(frame).is_err() {
            break;
        }
        if let Some(period) = period {
            next_at += period;
            let now = Instant::now();
            if next_at + Duration::from_secs(1) < now {
                // Far behind (a slow pipeline under `block`): restart pacing instead of bursting.
                next_at = now;
            }
            if !sleep_until(next_at, &shutdown) {
                break;
            }
        }
    }
}

/// Sleeps until `deadline`; false if shutdown came first.
fn sleep_until(deadline: Instant, shutdown: &CancellationToken) -> bool {
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(SHUTDOWN_POLL));
    }
}
