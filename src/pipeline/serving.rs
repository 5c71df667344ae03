//! What a worker serves, and how it is changed while frames keep flowing: a new version on
//! trial (committed after enough good predictions, rolled back by the worker itself on the first
//! failure or when too slow), a direct switch, or a candidate run in the shadow of the active
//! model with their agreement counted.
//!
//! Changes reach the worker through a small bounded channel that it reads between frames, so a
//! swap never waits for a lock on the inference path and never drops a frame.

use super::stats::LatencyWindow;
use super::{PipelineError, Postprocessor, Preprocessor};
use crate::config::ModelConfig;
use crate::model::{LoadedModel, ModelError};
use crate::prediction::InferenceResult;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Changes waiting for a worker. A change is refused (`busy`) when this many are pending.
const PENDING_CHANGES: usize = 4;
/// Latencies of the active model kept to compare a trial against.
pub(super) const RECENT_LATENCIES: usize = 64;

/// A model with its pre- and post-processing: what a worker runs frames through.
pub struct Serving {
    /// The model.
    pub model: Arc<LoadedModel>,
    /// Frame → input.
    pub pre: Preprocessor,
    /// Outputs → result.
    pub post: Postprocessor,
    /// The operator's name for this version.
    pub label: Option<String>,
}

/// Why a model's config cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The model file does not load on its backend.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The pre- or post-processing does not fit the model.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl Serving {
    /// Loads the model `config` names with its pre- and post-processing; `label` is the
    /// operator's name for this version.
    pub fn load(config: &ModelConfig, label: Option<String>) -> Result<Serving, ServingError> {
        let model = LoadedModel::load(config)?;
        let pre = Preprocessor::new(&config.id, &config.preprocess, model.input())?;
        let post = Postprocessor::new(
            &config.id,
            &config.postprocess,
            model.outputs(),
            pre.image_size(),
        )?;
        Ok(Serving {
            model: Arc::new(model),
            pre,
            post,
            label,
        })
    }
}

/// When a version on trial is committed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrialPolicy {
    /// Predictions it must serve without a single failure.
    pub predictions: u32,
    /// Its median latency must stay within `old median × latency_ratio + latency_slack`.
    pub latency_ratio: f64,
    /// See `latency_ratio`; keeps microsecond models from failing on noise.
    pub latency_slack: Duration,
}

/// A change for a worker.
pub enum Change {
    /// Serve `serving` on trial; the version serving now is kept to roll back to.
    Trial {
        /// The new version.
        serving: Serving,
        /// When to commit it.
        policy: TrialPolicy,
        /// Transfer that delivered it, for the report.
        transfer: Option<String>,
    },
    /// Serve `serving` from the next frame, no trial (going back to a known version).
    Switch(Serving),
    /// Run `serving` beside the active model on every frame and count their agreement.
    Shadow(Serving),
    /// Stop the shadow run.
    EndShadow,
}

/// What a worker reports about a change.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotEvent {
    /// Model id.
    pub model: String,
    /// Version concerned.
    pub version: String,
    /// Transfer that delivered it.
    pub transfer: Option<String>,
    /// What happened.
    pub kind: SlotEventKind,
}

/// See `SlotEvent`.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotEventKind {
    /// The change is in effect.
    Applied,
    /// The trial passed.
    Committed {
        /// Predictions served on trial.
        served: u32,
        /// Median latency on trial, µs.
        p50_us: u64,
    },
    /// The trial failed; the previous version serves again.
    RolledBack {
        /// Short, stable reason.
        code: &'static str,
        /// In words.
        reason: String,
    },
}

/// What serves a model now, as the status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotInfo {
    /// First 12 hex digits of the serving file's sha256.
    pub version: String,
    /// The operator's name for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Backend that runs it.
    pub backend: &'static str,
    /// Its file.
    pub path: std::path::PathBuf,
    /// On trial (not yet committed).
    pub trial: bool,
    /// Version running in its shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

impl SlotInfo {
    fn of(serving: &Serving) -> Self {
        Self {
            version: serving.model.version.clone(),
            label: serving.label.clone(),
            backend: serving.model.backend,
            path: serving.model.path.clone(),
            trial: false,
            shadow: None,
        }
    }
}

/// Counters of a shadow run.
#[derive(Debug, Default)]
pub struct ShadowStats {
    /// Candidate version.
    pub version: String,
    /// Frames both ran on.
    pub frames: AtomicU64,
    /// Frames on which their results agreed.
    pub agreed: AtomicU64,
    /// Frames the candidate failed on.
    pub errors: AtomicU64,
    /// The candidate's latencies.
    pub latency: LatencyWindow,
}

/// The handle to a model's worker that management holds.
pub struct ModelSlot {
    /// Model id.
    pub id: String,
    changes: SyncSender<Change>,
    info: Mutex<SlotInfo>,
    shadow: Mutex<Option<Arc<ShadowStats>>>,
}

/// A change could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Too many changes are already waiting for the worker.
    #[error("model \"{0}\" has changes waiting; try again once they are applied")]
    Busy(String),
    /// The worker has stopped.
    #[error("model \"{0}\" is not running")]
    Stopped(String),
}

impl ModelSlot {
    /// A slot for the worker that starts with `serving`; the worker gets the receiver.
    pub fn new(serving: &Serving) -> (Arc<Self>, Receiver<Change>) {
        let (changes, rx) = std::sync::mpsc::sync_channel(PENDING_CHANGES);
        let slot = Arc::new(Self {
            id: serving.model.id.clone(),
            changes,
            info: Mutex::new(SlotInfo::of(serving)),
            shadow: Mutex::new(None),
        });
        (slot, rx)
    }

    /// Queues a change for the worker, which applies it before its next frame.
    pub fn change(&self, change: Change) -> Result<(), SlotError> {
        self.changes.try_send(change).map_err(|e| match e {
            TrySendError::Full(_) => SlotError::Busy(self.id.clone()),
            TrySendError::Disconnected(_) => SlotError::Stopped(self.id.clone()),
        })
    }

    /// What serves now.
    pub fn info(&self) -> SlotInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shadow run's counters, if one runs.
    pub fn shadow(&self) -> Option<Arc<ShadowStats>> {
        self.shadow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_serving(&self, serving: &Serving, trial: bool) {
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        let shadow = info.shadow.take();
        *info = SlotInfo {
            trial,
            shadow,
            ..SlotInfo::of(serving)
        };
    }

    pub(super) fn set_trial(&self, trial: bool) {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).trial = trial;
    }

    pub(super) fn set_shadow(&self, stats: Option<Arc<ShadowStats>>) {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).shadow =
            stats.as_ref().map(|s| s.version.clone());
        *self.shadow.lock().unwrap_or_else(|p| p.into_inner()) = stats;
    }
}

/// A version on trial inside a worker.
pub(super) struct Trial {
    /// What served before; serves again on failure.
    pub old: Serving,
    pub policy: TrialPolicy,
    pub transfer: Option<String>,
    /// Median latency of the old version before the switch, µs; `None` if it had run nothing.
    pub old_p50_us: Option<u64>,
    /// Latencies on trial, µs.
    pub latencies: Vec<u64>,
}

/// How a trial ends after a good prediction, if it ends.
pub(super) enum Verdict {
    Continue,
    Commit { p50_us: u64 },
    TooSlow { reason: String },
}

impl Trial {
    /// Records one good prediction on trial and says whether the trial is over.
    pub fn served(&mut self, latency_us: u64) -> Verdict {
        self.latencies.push(latency_us);
        if (self.latencies.len() as u32) < self.policy.predictions {
            return Verdict::Continue;
        }
        let p50_us = median(&mut self.latencies.clone()).unwrap_or(0);
        if let Some(old) = self.old_p50_us {
            let bound = old as f64 * self.policy.latency_ratio
                + self.policy.latency_slack.as_micros() as f64;
            if p50_us as f64 > bound {
                return Verdict::TooSlow {
                    reason: format!(
                        "median latency {p50_us} µs over {} predictions is above the bound of {bound:.0} µs (previous version {old} µs × {} + {} µs)",
                        self.latencies.len(),
                        self.policy.latency_ratio,
                        self.policy.latency_slack.as_micros()
                    ),
                };
            }
        }
        Verdict::Commit { p50_us }
    }
}

/// Median of a set of latencies.
pub(super) fn median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[values.len() / 2])
}

/// Whether two results of the same frame agree: the same best class; the same boxes (same
/// labels, each overlapping its match by IoU ≥ 0.5); or raw outputs equal within 1e-3.
pub fn agree(a: &InferenceResult, b: &InferenceResult) -> bool {
    match (a, b) {
        (InferenceResult::Classes { top: x }, InferenceResult::Classes { top: y }) => {
            x.first().map(|c| &c.label) == y.first().map(|c| &c.label)
        }
        (InferenceResult::Boxes { boxes: x }, InferenceResult::Boxes { boxes: y }) => {
            x.len() == y.len()
                && x.iter().all(|p| {
                    y.iter()
                        .any(|q| p.label == q.label && super::detect::box_iou(p, q) >= 0.5)
                })
        }
        (InferenceResult::Raw { outputs: x }, InferenceResult::Raw { outputs: y }) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((kx, vx), (ky, vy))| {
                    kx == ky
                        && vx.shape == vy.shape
                        && vx.values.len() == vy.values.len()
                        && vx
                            .values
                            .iter()
                            .zip(&vy.values)
                            .all(|(p, q)| (p - q).abs() <= 1e-3 * p.abs().max(q.abs()).max(1.0))
                })
        }
        _ => false,
    }
}

/// Bumps a counter.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prediction::ClassScore;

    fn top(label: &str) -> InferenceResult {
        InferenceResult::Classes {
            top: vec![ClassScore {
                label: label.into(),
                index: 0,
                score: 0.9,
            }],
        }
    }

    #[test]
    fn results_agree_on_the_best_class_only() {
        assert!(agree(&top("a"), &top("a")));
        assert!(!agree(&top("a"), &top("b")));
        assert!(!agree(
            &top("a"),
            &InferenceResult::Boxes { boxes: Vec::new() }
        ));
    }

    fn trial(old: Option<u64>, n: u32) -> (TrialPolicy, Option<u64>, u32) {
        (
            TrialPolicy {
                predictions: n,
                latency_ratio: 2.0,
                latency_slack: Duration::from_micros(100),
            },
            old,
            n,
        )
    }

    fn verdicts(policy: TrialPolicy, old: Option<u64>, latencies: &[u64]) -> Vec<bool> {
        // Without an old serving to hold, the verdict logic is what is tested.
        let mut t = Trial {
            old: unreachable_serving(),
            policy,
            transfer: None,
            old_p50_us: old,
            latencies: Vec::new(),
        };
        latencies
            .iter()
            .map(|&l| matches!(t.served(l), Verdict::Commit { .. }))
            .collect()
    }

    fn unreachable_serving() -> Serving {
        let model = crate::model::LoadedModel::load(
            &toml::from_str(&format!(
                "id = \"echo\"\npath = {:?}\ninput_shapes = {{ x = [1, 3] }}\n[preprocess]\ntype = \"record\"\n[postprocess]\ntype = \"raw\"\n",
                concat!(env!("CARGO_MANIFEST_DIR"), "/models/echo.onnx")
            ))
            .unwrap(),
        )
        .unwrap();
        let pre = Preprocessor::new(
            "echo",
            &crate::config::PreprocessConfig::Record { fields: None },
            model.input(),
        )
        .unwrap();
        let post = Postprocessor::new(
            "echo",
            &toml::from_str("type = \"raw\"").unwrap(),
            model.outputs(),
            None,
        )
        .unwrap();
        Serving {
            model: Arc::new(model),
            pre,
            post,
            label: None,
        }
    }

    #[test]
    fn a_trial_commits_after_enough_predictions_within_the_latency_bound() {
        let (p, old, _) = trial(Some(1000), 3);
        assert_eq!(verdicts(p, old, &[900, 2000, 1100]), [false, false, true]);
        // Bound 1000 × 2 + 100 = 2100: a median of 2200 fails.
        assert_eq!(verdicts(p, old, &[2200, 2200, 10]), [false, false, false]);
        // Without a measured old latency there is nothing to compare with.
        let (p, _, _) = trial(None, 2);
        assert_eq!(verdicts(p, None, &[1_000_000, 1_000_000]), [false, true]);
    }
}
