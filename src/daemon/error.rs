//! Why the daemon could not start.

use crate::model::ModelError;
use crate::outbox::OutboxError;
use crate::pipeline::{PipelineError, ServingError};
use crate::sensor::SensorError;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Pre- or post-processing does not fit a model.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Serving(#[from] ServingError),
    /// A sensor could not be opened.
    #[error("sensor \"{sensor}\": {source}")]
    Sensor {
        sensor: String,
        #[source]
        source: SensorError,
    },
    /// A sensor's frames do not fit its model's input.
    #[error("sensor \"{sensor}\": {message}")]
    Mismatch { sensor: String, message: String },
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The MQTT settings are unusable.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The metrics endpoint cannot listen.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl From<tokio::task::JoinError> for StartError {
    /// A start-up task that panicked or was cancelled.
    fn from(e: tokio::task::JoinError) -> Self {
        StartError::Thread(std::io::Error::other(e))
    }
}
