//! Models as the daemon holds them: checked against their sha256, versioned, prepared once on the
//! first backend that can run them, with their inputs sorted into frame, constant and recurrent.

mod auto;
mod digest;
pub mod store;

pub use auto::{prepare_first, Chosen};
pub use digest::sha256_file;

use crate::backend::{self, filled, BackendError, PrepareOptions, PreparedModel, TensorSpec};
use crate::config::ModelConfig;
use std::path::PathBuf;
use std::time::Instant;
use tracing::info;
use tract_onnx::prelude::Tensor;

/// Hex characters of the sha256 used as a model's version.
pub const VERSION_LEN: usize = 12;

/// A model loaded for the pipeline.
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
    frame_input: usize,
    /// Per input: how it is fed.
    feeds: Vec<Feed>,
}

/// Where one model input comes from on each run.
#[derive(Debug, Clone)]
enum Feed {
    Frame,
    Constant(Tensor),
    /// Fed from this output index of the previous run; zeros first.
    Recurrent {
        output: usize,
        initial: Tensor,
    },
}

/// Per-sensor values of a model's recurrent inputs.
#[derive(Debug, Clone, Default)]
pub struct RecurrentState(Vec<Tensor>);

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
    /// No backend of `auto` could load it.
    #[error("model \"{id}\": no backend can load it: {tried}")]
    NoBackend { id: String, tried: String },
    /// Inputs and outputs do not fit the config's frame/constant/recurrent mapping.
    #[error("model \"{id}\": {message}")]
    Inputs { id: String, message: String },
}

impl LoadedModel {
    /// Verifies, loads, shapes and optimises the model described by `config`, on the backend it
    /// names or, for `auto`, the first that can run it.
    pub fn load(config: &ModelConfig) -> Result<Self, ModelError> {
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
        let options = PrepareOptions {
            overrides: config
                .input_shapes
                .iter()
                .map(|(name, shape)| (name.clone(), (None, shape.clone())))
                .collect(),
            constants: config.constant_inputs.clone(),
            threads: config.threads,
        };
        let (backend, prepared) = prepare_on_backend(config, &options)?;
        let (frame_input, feeds) = feeds(config, prepared.as_ref())?;
        Ok(Self {
            id,
            version: sha[..VERSION_LEN].to_string(),
            path: config.path.clone(),
            backend,
            prepared,
            frame_input,
            feeds,
        })
    }

    /// The input that frames are turned into.
    pub fn input(&self) -> &TensorSpec {
        &self.prepared.inputs()[self.frame_input]
    }

    /// Output names in graph order.
    pub fn outputs(&self) -> &[String] {
        self.prepared.outputs()
    }

    /// Fresh recurrent state for a new sensor.
    pub fn initial_state(&self) -> RecurrentState {
        RecurrentState(
            self.feeds
                .iter()
                .filter_map(|f| match f {
                    Feed::Recurrent { initial, .. } => Some(initial.clone()),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Runs the model on one frame's input tensor, feeding constant and recurrent inputs, and
    /// carries the recurrent outputs into `state` for the next frame.
    pub fn run(
        &self,
        frame: Tensor,
        state: &mut RecurrentState,
    ) -> Result<Vec<Tensor>, BackendError> {
        let mut frame = Some(frame);
        let mut recurrent = state.0.iter();
        let inputs: Vec<Tensor> = self
            .feeds
            .iter()
            .map(|feed| match feed {
                Feed::Frame => frame.take().unwrap_or_default(),
                Feed::Constant(t) => t.clone(),
                Feed::Recurrent { initial, .. } => recurrent.next().unwrap_or(initial).clone(),
            })
            .collect();
        let outputs = self.prepared.run(inputs)?;
        let mut next = Vec::with_capacity(state.0.len());
        for feed in &self.feeds {
            if let Feed::Recurrent { output, .. } = feed {
                next.push(outputs[*output].clone());
            }
        }
        state.0 = next;
        Ok(outputs)
    }
}

/// Picks the backend: the named one (which must work) or, for `auto`, the first that is present
/// and loads the model, logging why each earlier one was passed over.
fn prepare_on_backend(
    config: &ModelConfig,
    options: &PrepareOptions,
) -> Result<(&'static str, Box<dyn PreparedModel>), ModelError> {
    let id = &config.id;
    let backend_err = |source| ModelError::Backend {
        id: id.clone(),
        source,
    };
    if config.backend != "auto" {
        let backend = backend::by_name(&config.backend, &config.ort).ok_or_else(|| {
            backend_err(BackendError::Unavailable {
                backend: config.backend.clone(),
                reason: format!(
                    "not compiled into this binary (compiled: {})",
                    backend::compiled_names().join(", ")
                ),
            })
        })?;
        backend.check().map_err(|reason| {
            backend_err(BackendError::Unavailable {
                backend: config.backend.clone(),
                reason,
            })
        })?;
        let prepared = backend
            .prepare(&config.path, options)
            .map_err(backend_err)?;
        return Ok((backend.name(), prepared));
    }
    if config.auto_tune {
        return fastest_backend(config, options);
    }
    let chosen = auto::prepare_first(id, &config.path, &config.ort, options)?;
    if !chosen.passed_over.is_empty() {
        info!(model = %id, backend = chosen.backend, passed_over = %chosen.passed_over.join("; "), "Model loaded on a fallback backend");
    }
    Ok((chosen.backend, chosen.prepared))
}

/// Runs of each backend timed by `auto_tune`, after two untimed ones.
const TUNE_RUNS: usize = 10;

/// `auto_tune`: prepares the model on every available backend, times it on synthetic inputs
/// (constants at their values, everything else 0.5), logs the table and keeps the fastest.
fn fastest_backend(
    config: &ModelConfig,
    options: &PrepareOptions,
) -> Result<(&'static str, Box<dyn PreparedModel>), ModelError> {
    let id = &config.id;
    let mut best: Option<(f64, &'static str, Box<dyn PreparedModel>)> = None;
    let mut tried = Vec::new();
    for backend in backend::candidates(&config.ort) {
        if let Err(reason) = backend.check() {
            tried.push(format!("{}: not available ({reason})", backend.name()));
            continue;
        }
        let prepared = match backend.prepare(&config.path, options) {
            Ok(p) => p,
            Err(e) if e.is_config_error() => {
                return Err(ModelError::Backend {
                    id: id.clone(),
                    source: e,
                })
            }
            Err(e) => {
                tried.push(format!("{}: {e}", backend.name()));
                continue;
            }
        };
        let inputs: Result<Vec<Tensor>, BackendError> = prepared
            .inputs()
            .iter()
            .map(|spec| {
                let value = config
                    .constant_inputs
                    .get(&spec.name)
                    .copied()
                    .unwrap_or(0.5);
                filled(spec.datum_type, &spec.shape, value)
            })
            .collect();
        let timed = inputs.and_then(|inputs| {
            let mut times = Vec::with_capacity(TUNE_RUNS);
            for i in 0..TUNE_RUNS + 2 {
                let started = Instant::now();
                prepared.run(inputs.clone())?;
                if i >= 2 {
                    times.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            Ok(times[times.len() / 2])
        });
        match timed {
            Ok(median_ms) => {
                info!(model = %id, backend = backend.name(), median_ms, "Backend timing");
                if best.as_ref().is_none_or(|(b, _, _)| median_ms < *b) {
                    best = Some((median_ms, backend.name(), prepared));
                }
            }
            Err(e) => tried.push(format!("{}: {e}", backend.name())),
        }
    }
    match best {
        Some((median_ms, name, prepared)) => {
            info!(model = %id, backend = name, median_ms, passed_over = %tried.join("; "), "Fastest backend kept");
            Ok((name, prepared))
        }
        None => Err(ModelError::NoBackend {
            id: id.clone(),
            tried: tried.join("; "),
        }),
    }
}

/// Sorts the model's inputs into frame, constant and recurrent, as the config says.
fn feeds(
    config: &ModelConfig,
    prepared: &dyn PreparedModel,
) -> Result<(usize, Vec<Feed>), ModelError> {
    let err = |message: String| ModelError::Inputs {
        id: config.id.clone(),
        message,
    };
    let inputs = prepared.inputs();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    for name in config.recurrent_inputs.keys() {
        if !names.contains(&name.as_str()) {
            return Err(err(format!(
                "recurrent_inputs names \"{name}\"; the model's inputs are: {}",
                names.join(", ")
            )));
        }
    }
    let free: Vec<usize> = (0..inputs.len())
        .filter(|&i| {
            !config.constant_inputs.contains_key(&inputs[i].name)
                && !config.recurrent_inputs.contains_key(&inputs[i].name)
        })
        .collect();
    let frame_input = match &config.frame_input {
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            err(format!(
                "frame_input \"{name}\" is not an input of the model: {}",
                names.join(", ")
            ))
        })?,
        None if free.len() == 1 => free[0],
        None => {
            return Err(err(format!(
                "frames can feed one of several inputs ({}); say which with frame_input, and give the others in constant_inputs or recurrent_inputs",
                free.iter().map(|&i| names[i]).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let mut feeds = Vec::with_capacity(inputs.len());
    for (i, spec) in inputs.iter().enumerate() {
        let feed = if i == frame_input {
            Feed::Frame
        } else if let Some(value) = config.constant_inputs.get(&spec.name) {
            Feed::Constant(
                filled(spec.datum_type, &spec.shape, *value).map_err(|e| err(e.to_string()))?,
            )
        } else if let Some(output) = config.recurrent_inputs.get(&spec.name) {
            let output = prepared
                .outputs()
                .iter()
                .position(|o| o == output)
                .ok_or_else(|| {
                    err(format!(
                        "recurrent input \"{}\" comes from output \"{output}\", which the model does not have ({})",
                        spec.name,
                        prepared.outputs().join(", ")
                    ))
                })?;
            Feed::Recurrent {
                output,
                initial: filled(spec.datum_type, &spec.shape, 0.0)
                    .map_err(|e| err(e.to_string()))?,
            }
        } else {
            return Err(err(format!(
                "input \"{}\" is fed by neither frames, constant_inputs nor recurrent_inputs",
                spec.name
            )));
        };
        feeds.push(feed);
    }
    Ok((frame_input, feeds))
}
