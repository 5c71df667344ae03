//! Inference backends behind one small interface: prepare a model for concrete input shapes, then run it.
//!
//! Tensors are tract's `Tensor` everywhere: tract is always compiled in, and its tensor type is a plain
//! owned n-dimensional array that any backend can read from and write to.

mod tract;

pub use self::tract::TractBackend;

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
pub trait Backend {
    /// Short name used in config and logs.
    fn name(&self) -> &'static str;
    /// Loads and optimises `path` for the given input shapes; other inputs keep the model's own shapes,
    /// which must then be concrete.
    fn prepare(
        &self,
        path: &Path,
        overrides: &InputOverrides,
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
    /// Inference failed.
    #[error("{backend} inference failed: {message}")]
    Run {
        backend: &'static str,
        message: String,
    },
}
