//! The prediction record: what is stored in the outbox and published, as JSON. The pipeline
//! produces these types; everything that stores, sends or reads predictions depends on this file
//! alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One inference on one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// `{device}-{outbox sequence}`: unique per device across restarts, for de-duplication.
    pub id: String,
    /// Device id.
    pub device: String,
    /// Sensor id.
    pub sensor: String,
    /// Model id.
    pub model: String,
    /// First 12 hex characters of the model file's sha256.
    pub model_version: String,
    /// The frame's per-sensor sequence number.
    pub frame_seq: u64,
    /// When the frame was captured (RFC 3339, UTC).
    pub captured_at: String,
    /// When inference finished (RFC 3339, UTC).
    pub inferred_at: String,
    /// Time spent in the backend's run, in microseconds.
    pub latency_us: u64,
    /// Sent from the backlog after an outage rather than live.
    pub historical: bool,
    /// Post-processed outputs.
    pub result: InferenceResult,
}

/// RFC 3339 with microseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// What a prediction reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InferenceResult {
    /// `{"top": [...]}` for classifiers.
    Classes {
        /// Best classes first.
        top: Vec<ClassScore>,
    },
    /// `{"boxes": [...]}` for detectors.
    Boxes {
        /// Best first.
        boxes: Vec<DetectedBox>,
    },
    /// `{"outputs": {...}}` raw values.
    Raw {
        /// By output name.
        outputs: BTreeMap<String, RawOutput>,
    },
}

impl InferenceResult {
    /// A few words for logs: the best class and score, or the output names.
    pub fn summary(&self) -> String {
        match self {
            InferenceResult::Classes { top } => match top.first() {
                Some(best) => format!("{} {:.3}", best.label, best.score),
                None => "no class above threshold".to_string(),
            },
            InferenceResult::Boxes { boxes } => match boxes.first() {
                Some(best) => format!(
                    "{} boxes, best {} {:.3}",
                    boxes.len(),
                    best.label,
                    best.score
                ),
                None => "no boxes".to_string(),
            },
            InferenceResult::Raw { outputs } => {
                let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
                format!("outputs {}", names.join(", "))
            }
        }
    }
}

/// One class and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Label from the labels file, or the class index as text.
    pub label: String,
    /// Class index in the output.
    pub index: usize,
    /// Score after the activation.
    pub score: f32,
}

/// The first values of one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawOutput {
    /// Full shape of the output.
    pub shape: Vec<usize>,
    /// Its first values, flattened in C order.
    pub values: Vec<f32>,
}

/// One reported box, in [0, 1] of the model input: top-left corner, width, height.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedBox {
    /// Label from the labels file, or the class index as text.
    pub label: String,
    /// Class index.
    pub index: usize,
    /// Score (objectness × class score for YOLO rows).
    pub score: f32,
    /// Left.
    pub x: f32,
    /// Top.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}
