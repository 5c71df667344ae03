//! Inference backends behind one small interface: prepare a model for concrete input shapes, then run it.
//!
//! Tensors are tract's `Tensor` everywhere: tract is always compiled in, and its tensor type is a plain
//! owned n-dimensional array that any backend can read from and write to.

#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "ort")]
pub mod ort_library;
#[cfg(feature = "ort")]
mod ort_plugin;
mod registry;
mod tract;

pub use self::registry::{by_name, candidates, compiled_names};
pub use self::tract::TractBackend;

/// Sets `[onnxruntime] library`, the file the onnxruntime backends load unless `ORT_DYLIB_PATH`
/// names another (see `ort_library` for the whole search order).
pub fn configure_onnxruntime(library: Option<PathBuf>) {
    #[cfg(feature = "ort")]
    ort::configure_library(library);
    #[cfg(not(feature = "ort"))]
    if let Some(path) = library {
        tracing::warn!(
            path = %path.display(),
            "this build has no onnxruntime backend (cargo feature \"ort\"); [onnxruntime] library is ignored"
        );
    }
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::{DatumType, Tensor};

/// Name, element type and concrete shape of one model input.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub datum_type: DatumType,
    /// Concrete shape the model was prepared for.
    pub shape: Vec<usize>,
}

/// Concrete shapes (and optionally types) requested for some inputs, by name.
pub type InputOverrides = BTreeMap<String, (Option<DatumType>, Vec<usize>)>;

/// What a backend needs to know to prepare a model.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// Concrete shapes for inputs with dynamic dimensions.
    pub overrides: InputOverrides,
    /// Inputs fixed at one value for the model's lifetime (the caller still feeds them at run);
    /// a backend may fold them into the graph.
    pub constants: BTreeMap<String, f64>,
    /// Intra-op threads; the backend's default when `None`.
    pub threads: Option<usize>,
}

/// A tensor of `shape` and type `dt` with every element `value`.
pub fn filled(dt: DatumType, shape: &[usize], value: f64) -> Result<Tensor, BackendError> {
    let n: usize = shape.iter().product();
    Tensor::from_shape(shape, &vec![value; n])
        .and_then(|t| Ok(t.cast_to_dt(dt)?.into_owned()))
        .map_err(|e| BackendError::Run {
            backend: "edgeinfer",
            message: format!("cannot make a {dt:?} tensor of shape {shape:?}: {e}"),
        })
}

/// A model ready to run: loaded, shaped and optimised once.
pub trait PreparedModel: Send + Sync {
    /// Inputs in graph order, with the shapes they were prepared for.
    fn inputs(&self) -> &[TensorSpec];
    /// Output names in graph order.
    fn outputs(&self) -> &[String];
    /// Runs once; `inputs` are in graph order.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError>;
}

/// A way of running ONNX models.
pub trait Backend: Send + Sync {
    /// Short name used in config and logs.
    fn name(&self) -> &'static str;
    /// Whether this backend can run here (its library and device are present), and if not, why.
    fn check(&self) -> Result<(), String>;
    /// Loads and optimises `path` for the given input shapes; other inputs keep the model's own
    /// shapes, which must then be concrete.
    fn prepare(
        &self,
        path: &Path,
        options: &PrepareOptions,
    ) -> Result<Box<dyn PreparedModel>, BackendError>;
}

/// Why a model could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The file could not be parsed or optimised.
    #[error("{backend} cannot load {}: {message}", path.display())]
    Load {
        backend: &'static str,
        path: PathBuf,
        message: String,
    },
    /// An input has dimensions that are not known until run time and no override was given.
    #[error("input \"{name}\" has dynamic shape {shape}; give a concrete shape for it (input_shapes.{name})")]
    DynamicInput { name: String, shape: String },
    /// An override names an input the model does not have.
    #[error("the model has no input \"{name}\" (inputs: {known})")]
    UnknownInput { name: String, known: String },
    /// The backend is not compiled in or cannot run on this machine.
    #[error("backend \"{backend}\" is not available: {reason}")]
    Unavailable { backend: String, reason: String },
    /// Inference failed.
    #[error("{backend} inference failed: {message}")]
    Run {
        backend: &'static str,
        message: String,
    },
}

impl BackendError {
    /// A problem of the config (a dynamic input without a shape, an override naming no input),
    /// the same on every backend and every load option: reported at once, not retried elsewhere.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            BackendError::DynamicInput { .. } | BackendError::UnknownInput { .. }
        )
    }
}
