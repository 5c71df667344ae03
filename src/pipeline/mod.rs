//! From frames to predictions: the per-model queue, pre-processing, inference and post-processing.

mod detect;
mod heartbeat;
mod latest;
mod output_values;
mod postprocess;
mod preprocess;
mod queue;
pub mod resolve;
pub mod serving;
mod stats;
mod worker;

pub use detect::{decode_yolo, nms, Candidate, Detector};
pub use heartbeat::Heartbeat;
pub use latest::{LatestResult, LatestSlot};
pub use postprocess::Postprocessor;
pub use preprocess::Preprocessor;
pub use queue::{FrameQueue, QueueClosed, SensorPort};
pub use serving::{
    Change, ModelSlot, Serving, ServingError, SlotEvent, SlotEventKind, SlotInfo, TrialPolicy,
};
pub use stats::{LatencySummary, LatencyWindow, SensorStats, SensorTotals};
pub use worker::{FrameHook, Worker, WorkerHandle};

/// A model's pre- or post-processing does not fit the model or the frame it got.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Pre-processing config and model input disagree (found at start-up).
    #[error("model \"{model}\": {message}")]
    Setup { model: String, message: String },
    /// A frame could not be turned into an input, or outputs into a result.
    #[error("{0}")]
    Frame(String),
}
