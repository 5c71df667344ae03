//! Models as the daemon holds them: checked against their sha256, versioned, prepared once.

mod digest;

pub use digest::sha256_file;

use crate::backend::{Backend, BackendError, InputOverrides, PreparedModel, TensorSpec};
use crate::config::ModelConfig;
use std::path::PathBuf;
use tract_onnx::prelude::Tensor;

/// Hex characters of the sha256 used as a model's version.
pub const VERSION_LEN: usize = 12;

/// A model loaded for the pipeline: one input fed from frames, named outputs.
pub struct LoadedModel {
    /// Id from the config.
    pub id: String,
    /// First 12 hex characters of the file's sha256.
    pub version: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Backend that runs it.
    pub backend: &'static str,
    prepared: Box<dyn PreparedModel>,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("model \"{id}\": cannot read {}: {source}", path.display())]
    Read {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not the one the config pinned.
    #[error("model \"{id}\": sha256 of {} is {actual}, config expects {expected}", path.display())]
    Checksum {
        id: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The backend refused it.
    #[error("model \"{id}\": {source}")]
    Backend {
        id: String,
        #[source]
        source: BackendError,
    },
    /// The pipeline feeds exactly one input per frame.
    #[error("model \"{id}\" has {count} inputs ({names}); the pipeline feeds models with exactly one input")]
    InputCount {
        id: String,
        count: usize,
        names: String,
    },
}

impl LoadedModel {
    /// Verifies, loads, shapes and optimises the model described by `config`.
    pub fn load(config: &ModelConfig, backend: &dyn Backend) -> Result<Self, ModelError> {
        let id = config.id.clone();
        let sha = sha256_file(&config.path).map_err(|source| ModelError::Read {
            id: id.clone(),
            path: config.path.clone(),
            source,
        })?;
        if let Some(expected) = &config.sha256 {
            if !expected.eq_ignore_ascii_case(&sha) {
                return Err(ModelError::Checksum {
                    id,
                    path: config.path.clone(),
                    expected: expected.clone(),
                    actual: sha,
                });
            }
        }
        let overrides: InputOverrides = config
            .input_shapes
            .iter()
            .map(|(name, shape)| (name.clone(), (None, shape.clone())))
            .collect();
        let prepared = backend
            .prepare(&config.path, &overrides)
            .map_err(|source| ModelError::Backend {
                id: id.clone(),
                source,
            })?;
        if prepared.inputs().len() != 1 {
            return Err(ModelError::InputCount {
                id,
                count: prepared.inputs().len(),
                names: prepared
                    .inputs()
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Self {
            id,
            version: sha[..VERSION_LEN].to_string(),
            path: config.path.clone(),
            backend: backend.name(),
            prepared,
        })
    }

    /// The input frames are turned into.
    pub fn input(&self) -> &TensorSpec {
        &self.prepared.inputs()[0]
    }

    /// Output names in graph order.
    pub fn outputs(&self) -> &[String] {
        self.prepared.outputs()
    }

    /// Runs the model on one input tensor.
    pub fn run(&self, input: Tensor) -> Result<Vec<Tensor>, BackendError> {
        self.prepared.run(vec![input])
    }
}
