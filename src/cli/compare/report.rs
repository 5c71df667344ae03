//! The result of a comparison, as a table and as the JSON that `fleet rollout --require-compare`
//! reads.

use super::{best, ms, same, score_of, sha256};
use crate::config::ModelConfig;
use crate::pipeline::serving::Serving;
use crate::prediction::InferenceResult;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One model on one frame.
pub(super) enum Side {
    Ran(InferenceResult, Duration),
    Failed(String),
}

/// A model file compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::cli) struct ModelFile {
    pub path: PathBuf,
    pub sha256: String,
    pub backend: String,
}

/// A frame on which they disagreed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::cli) struct Disagreement {
    /// Frame number in the recording, from 0.
    pub frame: u64,
    /// Its time in the recording, in ms.
    pub offset_ms: f64,
    pub serving: String,
    pub candidate: String,
}

/// Median latencies and their ratio.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(in crate::cli) struct Latency {
    pub serving_median_ms: f64,
    pub candidate_median_ms: f64,
    /// Candidate over serving.
    pub ratio: f64,
}

/// Differences between the candidate's score for the serving model's best label and the
/// serving model's score, over the frames where both have one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(in crate::cli) struct ScoreDiff {
    pub frames: u64,
    pub mean_abs: f64,
    pub max_abs: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::cli) struct Report {
    pub model: String,
    pub sensor: String,
    pub recording: PathBuf,
    pub serving: ModelFile,
    pub candidate: ModelFile,
    /// Frames the serving model ran on.
    pub frames: u64,
    /// Of those, frames with the same result (as a shadow run counts agreement).
    pub agreed: u64,
    pub agreement: f64,
    /// Frames the serving model failed on (not compared).
    pub serving_failed: u64,
    /// Frames the candidate failed on (counted as disagreements).
    pub candidate_failed: u64,
    pub score_diff: ScoreDiff,
    pub latency: Latency,
    /// The first disagreeing frames.
    pub disagreements: Vec<Disagreement>,
    pub min_agreement: Option<f64>,
    /// Whether agreement reached `min_agreement`; `None` without one.
    pub passed: Option<bool>,
    #[serde(skip)]
    times: (Vec<Duration>, Vec<Duration>),
    #[serde(skip)]
    diff_sum: f64,
}

impl Report {
    pub(super) fn new(
        sensor: &str,
        model: &ModelConfig,
        serving: &Serving,
        candidate_path: &Path,
        candidate: &Serving,
        recording: &Path,
    ) -> Result<Report, String> {
        Ok(Report {
            model: model.id.clone(),
            sensor: sensor.to_string(),
            recording: recording.to_path_buf(),
            serving: ModelFile {
                path: model.path.clone(),
                sha256: sha256(&model.path)?,
                backend: serving.model.backend.to_string(),
            },
            candidate: ModelFile {
                path: candidate_path.to_path_buf(),
                sha256: sha256(candidate_path)?,
                backend: candidate.model.backend.to_string(),
            },
            frames: 0,
            agreed: 0,
            agreement: 0.0,
            serving_failed: 0,
            candidate_failed: 0,
            score_diff: ScoreDiff::default(),
            latency: Latency::default(),
            disagreements: Vec::new(),
            min_agreement: None,
            passed: None,
            times: (Vec::new(), Vec::new()),
            diff_sum: 0.0,
        })
    }

    /// Frame `n` at `offset`: what each side gave. At most `show` disagreements are listed.
    pub(super) fn add(&mut self, n: u64, offset: Duration, a: Side, b: Side, show: usize) {
        let Side::Ran(a, ta) = a else {
            self.serving_failed += 1;
            return;
        };
        self.frames += 1;
        self.times.0.push(ta);
        let (agreed, candidate) = match &b {
            Side::Ran(b, tb) => {
                self.times.1.push(*tb);
                if let Some((label, score)) = best(&a) {
                    if let Some(other) = score_of(b, label) {
                        let d = f64::from((other - score).abs());
                        self.score_diff.frames += 1;
                        self.diff_sum += d;
                        self.score_diff.max_abs = self.score_diff.max_abs.max(d);
                    }
                }
                (same(&a, b), b.summary())
            }
            Side::Failed(e) => {
                self.candidate_failed += 1;
                (false, format!("failed: {e}"))
            }
        };
        if agreed {
            self.agreed += 1;
        } else if self.disagreements.len() < show {
            self.disagreements.push(Disagreement {
                frame: n,
                offset_ms: ms(offset),
                serving: a.summary(),
                candidate,
            });
        }
    }

    /// Works out the figures and the verdict.
    pub(super) fn finish(&mut self, min_agreement: Option<f64>) {
        self.agreement = if self.frames == 0 {
            0.0
        } else {
            self.agreed as f64 / self.frames as f64
        };
        if self.score_diff.frames > 0 {
            self.score_diff.mean_abs = self.diff_sum / self.score_diff.frames as f64;
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort_unstable();
            v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let (mut a, mut b) = std::mem::take(&mut self.times);
        self.latency.serving_median_ms = median(&mut a);
        self.latency.candidate_median_ms = median(&mut b);
        if self.latency.serving_median_ms > 0.0 {
            self.latency.ratio = self.latency.candidate_median_ms / self.latency.serving_median_ms;
        }
        self.min_agreement = min_agreement;
        self.passed = min_agreement.map(|m| self.agreement >= m);
    }

    /// The report for a terminal.
    pub(super) fn table(&self) -> String {
        let mut out = format!(
            "model \"{}\" on sensor \"{}\", recording {}\n\
             serving    {} ({}, {})\n\
             candidate  {} ({}, {})\n\
             frames {}  agreed {}  agreement {:.4}{}\n\
             score difference on the serving model's best label: mean {:.4}, max {:.4} over {} frames\n\
             median latency: serving {:.3} ms, candidate {:.3} ms, ratio {:.3}\n",
            self.model,
            self.sensor,
            self.recording.display(),
            self.serving.path.display(),
            &self.serving.sha256[..12],
            self.serving.backend,
            self.candidate.path.display(),
            &self.candidate.sha256[..12],
            self.candidate.backend,
            self.frames,
            self.agreed,
            self.agreement,
            match (self.min_agreement, self.passed) {
                (Some(m), Some(true)) => format!("  (≥ {m}: passed)"),
                (Some(m), _) => format!("  (< {m}: FAILED)"),
                _ => String::new(),
            },
            self.score_diff.mean_abs,
            self.score_diff.max_abs,
            self.score_diff.frames,
            self.latency.serving_median_ms,
            self.latency.candidate_median_ms,
            self.latency.ratio,
        );
        if self.serving_failed + self.candidate_failed > 0 {
            out.push_str(&format!(
                "failed frames: serving {}, candidate {}\n",
                self.serving_failed, self.candidate_failed
            ));
        }
        if !self.disagreements.is_empty() {
            out.push_str(&format!(
                "first {} of {} disagreements:\n  frame  offset ms  serving  |  candidate\n",
                self.disagreements.len(),
                self.frames - self.agreed
            ));
            for d in &self.disagreements {
                out.push_str(&format!(
                    "  {:>5}  {:>9.1}  {}  |  {}\n",
                    d.frame, d.offset_ms, d.serving, d.candidate
                ));
            }
        }
        out
    }
}
