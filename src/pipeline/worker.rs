//! The inference worker: one OS thread per model, so inference never runs on the async reactor.

use super::{FrameQueue, LatencyWindow, Postprocessor, Preprocessor, SensorStats};
use crate::frame::Frame;
use crate::model::{LoadedModel, RecurrentState};
use crate::outbox::{Appended, Outbox};
use crate::prediction::{rfc3339, Prediction};
use crate::service::Heartbeat;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// Everything a model's worker needs.
pub struct Worker {
    /// Device id, for prediction ids.
    pub device: String,
    /// The model.
    pub model: Arc<LoadedModel>,
    /// Frame → input.
    pub pre: Preprocessor,
    /// Outputs → result.
    pub post: Postprocessor,
    /// Frames to infer on.
    pub queue: Arc<FrameQueue>,
    /// Where predictions go.
    pub outbox: Arc<Outbox>,
    /// Counters of the sensors feeding this model.
    pub stats: HashMap<Arc<str>, Arc<SensorStats>>,
    /// Log each prediction at INFO rather than DEBUG.
    pub log_predictions: bool,
    /// Progress, for the service watchdog.
    pub heartbeat: Arc<Heartbeat>,
    /// Inference latencies, for telemetry.
    pub latency: Arc<LatencyWindow>,
}

/// Test hook: the worker hangs for good after this many frames, as a deadlocked model run or
/// outbox write would (the watchdog must then stop its pings). Never set in production.
const HANG_HOOK: &str = "EDGEINFER_TEST_HANG_AFTER_FRAMES";

/// A running worker thread.
pub struct WorkerHandle {
    /// Model id.
    pub model: String,
    /// The thread; it ends when its queue is closed and drained.
    pub thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker on its own thread.
    pub fn spawn(self) -> std::io::Result<WorkerHandle> {
        let model = self.model.id.clone();
        let thread = std::thread::Builder::new()
            .name(format!("infer-{model}"))
            .spawn(move || self.run())?;
        Ok(WorkerHandle { model, thread })
    }

    fn run(self) {
        debug!(model = %self.model.id, "Inference worker started");
        // Recurrent model state is kept per sensor: two microphones are two streams.
        let mut states: HashMap<Arc<str>, RecurrentState> = HashMap::new();
        let hang_after = std::env::var(HANG_HOOK)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let mut frames = 0u64;
        while let Some(frame) = self.queue.pop() {
            self.heartbeat.busy();
            frames += 1;
            if hang_after.is_some_and(|n| frames > n) {
                warn!(model = %self.model.id, "{HANG_HOOK} reached: this worker now hangs");
                loop {
                    std::thread::park();
                }
            }
            let stats = self.stats.get(&frame.sensor).cloned();
            let state = states
                .entry(Arc::clone(&frame.sensor))
                .or_insert_with(|| self.model.initial_state());
            match self.infer(frame, state) {
                Ok(true) => {
                    if let Some(s) = &stats {
                        SensorStats::bump(&s.inferred);
                    }
                }
                Ok(false) => {}
                Err(()) => {
                    if let Some(s) = &stats {
                        SensorStats::bump(&s.errors);
                    }
                }
            }
            self.heartbeat.idle();
        }
        debug!(model = %self.model.id, "Inference worker stopped");
    }

    /// Infers on one frame and stores the prediction. `Ok(false)`: the outbox refused it (full).
    fn infer(&self, frame: Frame, state: &mut RecurrentState) -> Result<bool, ()> {
        let model = &self.model;
        let input = self.pre.apply(&frame.payload).map_err(|e| {
            warn!(model = %model.id, sensor = %frame.sensor, frame = frame.seq, error = %e, "Frame skipped: pre-processing failed");
        })?;
        let started = Instant::now();
        let outputs = model.run(input, state).map_err(|e| {
            self.latency.record_error();
            warn!(model = %model.id, sensor = %frame.sensor, frame = frame.seq, error = %e, "Frame skipped: inference failed");
        })?;
        let latency = started.elapsed();
        self.latency.record(latency.as_micros() as u64);
        let result = self.post.apply(&outputs).map_err(|e| {
            warn!(model = %model.id, sensor = %frame.sensor, frame = frame.seq, error = %e, "Frame skipped: post-processing failed");
        })?;
        let inferred_at = SystemTime::now();
        let summary = result.summary();
        let appended = self.outbox.append(&frame.sensor, |seq| {
            let prediction = Prediction {
                id: format!("{}-{seq}", self.device),
                device: self.device.clone(),
                sensor: frame.sensor.to_string(),
                model: model.id.clone(),
                model_version: model.version.clone(),
                frame_seq: frame.seq,
                captured_at: rfc3339(frame.captured_at),
                inferred_at: rfc3339(inferred_at),
                latency_us: latency.as_micros() as u64,
                historical: false,
                result,
            };
            // Serializing plain strings and numbers cannot fail.
            serde_json::to_vec(&prediction).unwrap_or_default()
        });
        match appended {
            Ok(Appended::Stored { seq, payload_len }) => {
                let id = format!("{}-{seq}", self.device);
                let latency_us = latency.as_micros() as u64;
                if self.log_predictions {
                    info!(id, sensor = %frame.sensor, frame = frame.seq, latency_us, bytes = payload_len, result = %summary, "Prediction stored");
                } else {
                    debug!(id, sensor = %frame.sensor, frame = frame.seq, latency_us, bytes = payload_len, result = %summary, "Prediction stored");
                }
                Ok(true)
            }
            Ok(Appended::Rejected) => Ok(false),
            Err(e) => {
                error!(model = %model.id, sensor = %frame.sensor, frame = frame.seq, error = %e, "Prediction lost: outbox write failed");
                Err(())
            }
        }
    }
}
