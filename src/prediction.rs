//! The prediction record: what is stored in the outbox and published, as JSON.

use crate::pipeline::InferenceResult;
use serde::{Deserialize, Serialize};
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
