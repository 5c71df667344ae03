//! The inference worker: one OS thread per model, so inference never runs on the async reactor.
//! Between frames it applies changes of what it serves (see `serving`): a new version on trial,
//! a switch back, a shadow candidate.

use super::serving::{
    self, bump, Change, ModelSlot, ShadowStats, SlotEvent, SlotEventKind, Trial, Verdict,
    RECENT_LATENCIES,
};
use super::{FrameQueue, Heartbeat, LatencyWindow, LatestResult, SensorStats, Serving};
use crate::frame::Frame;
use crate::model::RecurrentState;
use crate::outbox::{Appended, Outbox};
use crate::prediction::{rfc3339, InferenceResult, Prediction};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};
use tract_onnx::prelude::Tensor;

/// Everything a model's worker needs.
pub struct Worker {
    /// Device id, for prediction ids.
    pub device: String,
    /// The model with its pre- and post-processing.
    pub serving: Serving,
    /// Its slot, where management sees what serves.
    pub slot: Arc<ModelSlot>,
    /// Changes of what it serves, from the slot.
    pub changes: Receiver<Change>,
    /// Where it reports changes applied, committed or rolled back. Bounded; an event that
    /// does not fit is logged and dropped (the state on disk is updated by its reader, so the
    /// reader must keep up; it does nothing else).
    pub events: tokio::sync::mpsc::Sender<SlotEvent>,
    /// Frames to infer on.
    pub queue: Arc<FrameQueue>,
    /// Where predictions go.
    pub outbox: Arc<Outbox>,
    /// Counters of the sensors feeding this model.
    pub stats: HashMap<Arc<str>, Arc<SensorStats>>,
    /// Log each prediction at INFO rather than DEBUG.
    pub log_predictions: bool,
    /// Keep each sensor's newest result in brief (`SensorStats::latest`), for Home Assistant's
    /// states; off, the hot path does not build it.
    pub keep_latest: bool,
    /// Progress, for the service watchdog.
    pub heartbeat: Arc<Heartbeat>,
    /// Inference latencies, for telemetry.
    pub latency: Arc<LatencyWindow>,
    /// Called before each frame; see [`FrameHook`].
    pub frame_hook: Option<FrameHook>,
}

/// Called by a worker on its own thread before each frame, with the model id and the frame's
/// number (from 1). A way to inject faults where a worker runs — a model run that deadlocks, an
/// outbox write that takes seconds — for tests of what watches the workers, such as the systemd
/// watchdog. The daemon sets none of its own.
pub type FrameHook = Arc<dyn Fn(&str, u64) + Send + Sync>;

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
        let model = self.serving.model.id.clone();
        let thread = std::thread::Builder::new()
            .name(format!("infer-{model}"))
            .spawn(move || self.run())?;
        Ok(WorkerHandle { model, thread })
    }

    fn run(self) {
        let id = self.serving.model.id.clone();
        debug!(model = %id, "Inference worker started");
        let mut state = WorkerState::new(self.serving);
        let mut frames = 0u64;
        let ctx = Shared {
            device: self.device,
            slot: self.slot,
            events: self.events,
            outbox: self.outbox,
            log_predictions: self.log_predictions,
            keep_latest: self.keep_latest,
            latency: self.latency,
            stats: self.stats,
        };
        while let Some(frame) = self.queue.pop() {
            self.heartbeat.busy();
            while let Ok(change) = self.changes.try_recv() {
                state.apply(change, &ctx);
            }
            frames += 1;
            if let Some(hook) = &self.frame_hook {
                hook(&id, frames);
            }
            let stats = ctx.stats.get(&frame.sensor).cloned();
            match state.frame(&frame, &ctx) {
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
        debug!(model = %id, "Inference worker stopped");
    }
}

/// What the worker's steps share and do not change.
struct Shared {
    device: String,
    slot: Arc<ModelSlot>,
    events: tokio::sync::mpsc::Sender<SlotEvent>,
    outbox: Arc<Outbox>,
    log_predictions: bool,
    keep_latest: bool,
    latency: Arc<LatencyWindow>,
    stats: HashMap<Arc<str>, Arc<SensorStats>>,
}

impl Shared {
    fn report(&self, serving: &Serving, transfer: Option<String>, kind: SlotEventKind) {
        let event = SlotEvent {
            model: serving.model.id.clone(),
            version: serving.model.version.clone(),
            transfer,
            kind,
        };
        if let Err(e) = self.events.try_send(event) {
            warn!(model = %serving.model.id, error = %e, "Model event not reported");
        }
    }
}

/// A candidate running in the shadow of the active model.
struct Shadow {
    serving: Serving,
    stats: Arc<ShadowStats>,
    /// Recurrent state per sensor, apart from the active model's.
    states: HashMap<Arc<str>, RecurrentState>,
}

/// What the worker serves and remembers between frames.
struct WorkerState {
    serving: Serving,
    /// Recurrent model state per sensor: two microphones are two streams.
    states: HashMap<Arc<str>, RecurrentState>,
    trial: Option<Trial>,
    shadow: Option<Shadow>,
    /// Latest latencies of the serving version, µs.
    recent: VecDeque<u64>,
}

/// Why a frame gave no result.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("pre-processing failed: {0}")]
    Pre(String),
    #[error("inference failed: {0}")]
    Run(String),
    #[error("post-processing failed: {0}")]
    Post(String),
}

/// One frame through one version.
struct Inferred {
    result: InferenceResult,
    latency: Duration,
    /// The input, kept for a shadow run that takes the same input.
    input: Option<Tensor>,
}

impl WorkerState {
    fn new(serving: Serving) -> Self {
        Self {
            serving,
            states: HashMap::new(),
            trial: None,
            shadow: None,
            recent: VecDeque::with_capacity(RECENT_LATENCIES),
        }
    }

    /// Serves `next` from now on; what served is returned.
    fn replace(&mut self, next: Serving) -> Serving {
        // State shapes belong to a version: streams start afresh on the new one.
        self.states.clear();
        self.recent.clear();
        std::mem::replace(&mut self.serving, next)
    }

    fn apply(&mut self, change: Change, ctx: &Shared) {
        let id = self.serving.model.id.clone();
        match change {
            Change::Trial {
                serving,
                policy,
                transfer,
            } => {
                // A trial replacing a trial: the version to fall back to stays the last good one.
                let old_p50_us =
                    serving::median(&mut self.recent.iter().copied().collect::<Vec<_>>());
                let old = self.replace(serving);
                let old = match self.trial.take() {
                    Some(t) => t.old,
                    None => old,
                };
                info!(model = %id, version = %self.serving.model.version, previous = %old.model.version, predictions = policy.predictions, "New model version serving on trial");
                ctx.slot.set_serving(&self.serving, true);
                ctx.report(&self.serving, transfer.clone(), SlotEventKind::Applied);
                self.trial = Some(Trial {
                    old,
                    policy,
                    transfer,
                    old_p50_us,
                    latencies: Vec::new(),
                });
            }
            Change::Switch(serving) => {
                self.trial = None;
                self.replace(serving);
                info!(model = %id, version = %self.serving.model.version, "Model version switched");
                ctx.slot.set_serving(&self.serving, false);
                ctx.report(&self.serving, None, SlotEventKind::Applied);
            }
            Change::Shadow(serving) => {
                let stats = Arc::new(ShadowStats {
                    version: serving.model.version.clone(),
                    ..ShadowStats::default()
                });
                info!(model = %id, candidate = %stats.version, "Shadow run started");
                ctx.slot.set_shadow(Some(Arc::clone(&stats)));
                ctx.report(&serving, None, SlotEventKind::Applied);
                self.shadow = Some(Shadow {
                    serving,
                    stats,
                    states: HashMap::new(),
                });
            }
            Change::EndShadow => {
                if let Some(s) = self.shadow.take() {
                    info!(model = %id, candidate = %s.stats.version, frames = s.stats.frames.load(std::sync::atomic::Ordering::Relaxed), agreed = s.stats.agreed.load(std::sync::atomic::Ordering::Relaxed), "Shadow run ended");
                    ctx.slot.set_shadow(None);
                    ctx.report(&s.serving, None, SlotEventKind::Applied);
                }
            }
        }
    }

    /// One frame: inferred, stored, and run in the shadow if there is one. `Ok(false)`: the
    /// outbox refused the prediction (full).
    fn frame(&mut self, frame: &Frame, ctx: &Shared) -> Result<bool, ()> {
        let keep_input = self
            .shadow
            .as_ref()
            .is_some_and(|s| s.serving.model.input() == self.serving.model.input());
        let state = self
            .states
            .entry(Arc::clone(&frame.sensor))
            .or_insert_with(|| self.serving.model.initial_state());
        let outcome = infer(&self.serving, frame, state, keep_input);
        let inferred = match outcome {
            Ok(i) => i,
            Err(e) => {
                if matches!(e, StepError::Run(_)) {
                    ctx.latency.record_error();
                }
                if self.trial.is_some() {
                    // The new version failed: the last good one serves again, from this frame.
                    self.end_trial_failed("runtime_error", e.to_string(), ctx);
                    return self.frame(frame, ctx);
                }
                warn!(model = %self.serving.model.id, sensor = %frame.sensor, frame = frame.seq, error = %e, "Frame skipped");
                return Err(());
            }
        };
        let latency_us = inferred.latency.as_micros() as u64;
        ctx.latency.record(latency_us);
        if self.recent.len() == RECENT_LATENCIES {
            self.recent.pop_front();
        }
        self.recent.push_back(latency_us);
        if let Some(shadow) = &mut self.shadow {
            shadow_run(shadow, frame, inferred.input.clone(), &inferred.result);
        }
        let stored = store(&self.serving, frame, &inferred, ctx);
        if let Some(trial) = &mut self.trial {
            match trial.served(latency_us) {
                Verdict::Continue => {}
                Verdict::Commit { p50_us } => {
                    let served = trial.latencies.len() as u32;
                    let transfer = trial.transfer.clone();
                    self.trial = None;
                    info!(model = %self.serving.model.id, version = %self.serving.model.version, served, p50_us, "Model version passed its trial");
                    ctx.slot.set_trial(false);
                    ctx.report(
                        &self.serving,
                        transfer,
                        SlotEventKind::Committed { served, p50_us },
                    );
                }
                Verdict::TooSlow { reason } => self.end_trial_failed("too_slow", reason, ctx),
            }
        }
        stored
    }

    fn end_trial_failed(&mut self, code: &'static str, reason: String, ctx: &Shared) {
        let Some(trial) = self.trial.take() else {
            return;
        };
        let failed = self.replace(trial.old);
        error!(model = %failed.model.id, version = %failed.model.version, back_to = %self.serving.model.version, code, reason, "Model version failed its trial; rolled back");
        ctx.slot.set_serving(&self.serving, false);
        ctx.report(
            &failed,
            trial.transfer,
            SlotEventKind::RolledBack { code, reason },
        );
    }
}

/// Pre-processing, inference and post-processing of one frame. A panic inside the backend is
/// caught and reported as a failed run, so that one bad model cannot stop the worker.
fn infer(
    serving: &Serving,
    frame: &Frame,
    state: &mut RecurrentState,
    keep_input: bool,
) -> Result<Inferred, StepError> {
    let input = serving
        .pre
        .apply(&frame.payload)
        .map_err(|e| StepError::Pre(e.to_string()))?;
    let kept = keep_input.then(|| input.clone());
    let (result, latency) = run_and_post(serving, input, state)?;
    Ok(Inferred {
        result,
        latency,
        input: kept,
    })
}

/// Inference on an input tensor, then post-processing; the latency is the run's alone.
fn run_and_post(
    serving: &Serving,
    input: Tensor,
    state: &mut RecurrentState,
) -> Result<(InferenceResult, Duration), StepError> {
    let started = Instant::now();
    let outputs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serving.model.run(input, state)
    }))
    .map_err(|_| StepError::Run("the backend panicked".into()))?
    .map_err(|e| StepError::Run(e.to_string()))?;
    let latency = started.elapsed();
    let result = serving
        .post
        .apply(&outputs)
        .map_err(|e| StepError::Post(e.to_string()))?;
    Ok((result, latency))
}

/// Runs the shadow candidate on the frame the active model just served and counts whether they
/// agreed. Its result is not stored.
fn shadow_run(shadow: &mut Shadow, frame: &Frame, input: Option<Tensor>, active: &InferenceResult) {
    let state = shadow
        .states
        .entry(Arc::clone(&frame.sensor))
        .or_insert_with(|| shadow.serving.model.initial_state());
    let outcome = match input {
        // Same input spec: the active model's tensor is reused.
        Some(input) => run_and_post(&shadow.serving, input, state),
        None => infer(&shadow.serving, frame, state, false).map(|i| (i.result, i.latency)),
    };
    let stats = &shadow.stats;
    bump(&stats.frames);
    match outcome {
        Ok((result, latency)) => {
            stats.latency.record(latency.as_micros() as u64);
            if serving::agree(active, &result) {
                bump(&stats.agreed);
            }
        }
        Err(e) => {
            bump(&stats.errors);
            stats.latency.record_error();
            debug!(model = %shadow.serving.model.id, candidate = %stats.version, error = %e, "Shadow run failed on a frame");
        }
    }
}

/// Stores the prediction of one frame. `Ok(false)`: the outbox refused it (full).
fn store(serving: &Serving, frame: &Frame, inferred: &Inferred, ctx: &Shared) -> Result<bool, ()> {
    let model = &serving.model;
    let inferred_at = SystemTime::now();
    let latency_us = inferred.latency.as_micros() as u64;
    let captured_at = rfc3339(frame.captured_at);
    let appended = ctx.outbox.append(&frame.sensor, |seq| {
        let prediction = Prediction {
            id: format!("{}-{seq}", ctx.device),
            device: ctx.device.clone(),
            sensor: frame.sensor.to_string(),
            model: model.id.clone(),
            model_version: model.version.clone(),
            frame_seq: frame.seq,
            captured_at: captured_at.clone(),
            inferred_at: rfc3339(inferred_at),
            latency_us,
            historical: false,
            result: inferred.result.clone(),
        };
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_vec(&prediction).unwrap_or_default()
    });
    match appended {
        Ok(Appended::Stored { seq, payload_len }) => {
            let id = format!("{}-{seq}", ctx.device);
            let summary = inferred.result.summary();
            if let Some(stats) = ctx.stats.get(&frame.sensor).filter(|_| ctx.keep_latest) {
                let brief =
                    LatestResult::new(&inferred.result, &model.id, &model.version, captured_at);
                stats.latest.set(brief);
            }
            if ctx.log_predictions {
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
