//! The capture loop shared by every source: connect (and reconnect with backoff), pace, number,
//! timestamp and queue frames until shutdown.

use super::{FrameSource, Next, SensorError};
use crate::frame::Frame;
use crate::pipeline::{SensorPort, SensorStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How a source is driven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureSettings {
    /// When frames are taken from the source.
    pub pacing: Pacing,
    /// Rewind at the end instead of stopping.
    pub looping: bool,
}

/// When the capture loop asks its source for the next frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the source delivers and the queue takes them (devices pace themselves).
    Free,
    /// This many frames per second.
    Rate(f64),
    /// At the offsets the source reports (recordings), relative to the first frame of each pass.
    Recorded,
}

/// Longest a sleeping sensor takes to notice shutdown.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);
/// First wait before reopening a device that is missing or went away; it doubles up to the max.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two attempts to reopen a device.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Runs `source` until it ends, the queue closes, or `shutdown` is cancelled.
pub fn run_capture(
    sensor: Arc<str>,
    mut source: Box<dyn FrameSource>,
    settings: CaptureSettings,
    port: SensorPort,
    shutdown: CancellationToken,
) {
    if !connect(&sensor, source.as_mut(), &port, &shutdown, false) {
        return;
    }
    let mut next_at = Instant::now();
    let mut pass_start = Instant::now();
    let mut seq = 0u64;
    let mut produced_this_pass = false;
    while !shutdown.is_cancelled() {
        let next = source.next_payload();
        let overruns = source.take_overruns();
        if overruns > 0 {
            port.stats.overruns.fetch_add(overruns, Ordering::Relaxed);
        }
        let (payload, offset) = match next {
            Ok(Next::Frame { payload, offset }) => (payload, offset),
            Ok(Next::Idle) => continue,
            Ok(Next::End) => {
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
            Err(SensorError::Lost(e)) => {
                // A reopen cycle: counted whether the first attempt succeeds or not.
                SensorStats::bump(&port.stats.reconnects);
                warn!(sensor = %sensor, error = %e, "Sensor lost; reconnecting");
                if !connect(&sensor, source.as_mut(), &port, &shutdown, true) {
                    break;
                }
                continue;
            }
            Err(e @ SensorError::Open { .. }) => {
                warn!(sensor = %sensor, error = %e, "Sensor stopped");
                break;
            }
        };
        if !produced_this_pass {
            pass_start = Instant::now();
        }
        produced_this_pass = true;
        if settings.pacing == Pacing::Recorded {
            if let Some(offset) = offset {
                if !sleep_until(pass_start + offset, &shutdown) {
                    break;
                }
            }
        }
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
        if let Pacing::Rate(rate) = settings.pacing {
            next_at += Duration::from_secs_f64(1.0 / rate);
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

/// Opens the source, retrying with exponential backoff: one log line per failed attempt, saying
/// when the next one comes. False if shutdown came first.
fn connect(
    sensor: &str,
    source: &mut dyn FrameSource,
    port: &SensorPort,
    shutdown: &CancellationToken,
    reconnecting: bool,
) -> bool {
    let mut wait = RECONNECT_MIN;
    let mut attempt = 1u32;
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        match source.connect() {
            Ok(()) => {
                if reconnecting || attempt > 1 {
                    info!(sensor, attempt, "Sensor connected");
                } else {
                    debug!(sensor, "Sensor opened");
                }
                return true;
            }
            Err(e) => {
                SensorStats::bump(&port.stats.reconnects);
                warn!(
                    sensor,
                    attempt,
                    error = %e,
                    retry_in_ms = wait.as_millis() as u64,
                    "Sensor unavailable; will retry"
                );
            }
        }
        if !sleep_until(Instant::now() + wait, shutdown) {
            return false;
        }
        wait = (wait * 2).min(RECONNECT_MAX);
        attempt += 1;
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
