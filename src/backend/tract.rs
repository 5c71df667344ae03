//! The tract backend: pure Rust, always available, CPU only.

use super::{filled, Backend, BackendError, PrepareOptions, PreparedModel, TensorSpec};
use std::path::Path;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// Runs models with tract (`tract-onnx`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TractBackend;

type Plan = std::sync::Arc<TypedRunnableModel>;

struct TractModel {
    plan: Plan,
    /// tract's matrix-product threads for this model (its own pool; single-threaded for 1).
    executor: Executor,
    inputs: Vec<TensorSpec>,
    outputs: Vec<String>,
}

const NAME: &str = "tract";

fn load_err(path: &Path, e: impl std::fmt::Display) -> BackendError {
    BackendError::Load {
        backend: NAME,
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    }
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// Tries the model as it is, then with its value_info ignored (some exporters write
    /// intermediate shapes tract cannot reconcile); the first error is the one reported.
    fn prepare(
        &self,
        path: &Path,
        options: &PrepareOptions,
    ) -> Result<Box<dyn PreparedModel>, BackendError> {
        let first = match load(tract_onnx::onnx(), path, options) {
            Ok(m) => return Ok(Box::new(m)),
            Err(e) if e.is_config_error() => return Err(e),
            Err(e) => e,
        };
        match load(
            tract_onnx::onnx().with_ignore_value_info(true),
            path,
            options,
        ) {
            Ok(m) => {
                tracing::debug!(path = %path.display(), "tract loaded the model with value_info ignored");
                Ok(Box::new(m))
            }
            Err(_) => Err(first),
        }
    }
}

fn load(
    onnx: tract_onnx::Onnx,
    path: &Path,
    options: &PrepareOptions,
) -> Result<TractModel, BackendError> {
    let mut model = onnx.model_for_path(path).map_err(|e| load_err(path, e))?;
    let input_outlets = model
        .input_outlets()
        .map_err(|e| load_err(path, e))?
        .to_vec();
    let names: Vec<String> = input_outlets
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    for name in options.overrides.keys().chain(options.constants.keys()) {
        if !names.contains(name) {
            return Err(BackendError::UnknownInput {
                name: name.clone(),
                known: names.join(", "),
            });
        }
    }
    let mut inputs = Vec::with_capacity(names.len());
    for (ix, name) in names.iter().enumerate() {
        let fact = model.input_fact(ix).map_err(|e| load_err(path, e))?.clone();
        let model_dt = fact.datum_type.concretize();
        let (dt, shape) = match options.overrides.get(name) {
            Some((dt, shape)) => (dt.or(model_dt).unwrap_or(DatumType::F32), shape.clone()),
            None => {
                let concrete = fact.shape.concretize().and_then(|dims| {
                    dims.iter()
                        .map(|d| d.to_usize().ok())
                        .collect::<Option<Vec<usize>>>()
                });
                match concrete {
                    Some(shape) => (model_dt.unwrap_or(DatumType::F32), shape),
                    None => {
                        return Err(BackendError::DynamicInput {
                            name: name.clone(),
                            shape: format!("{:?}", fact.shape),
                        })
                    }
                }
            }
        };
        let new_fact = match options.constants.get(name) {
            // A known value lets tract fold what depends on it (an `If` on the sample rate).
            Some(value) => InferenceFact::from(filled(dt, &shape, *value)?),
            None => InferenceFact::dt_shape(dt, &*shape),
        };
        model
            .set_input_fact(ix, new_fact)
            .map_err(|e| load_err(path, e))?;
        inputs.push(TensorSpec {
            name: name.clone(),
            datum_type: dt,
            shape,
        });
    }
    let outputs: Vec<String> = model
        .output_outlets()
        .map_err(|e| load_err(path, e))?
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .map(str::to_string)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect();
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| load_err(path, e))?;
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let executor = if threads > 1 {
        Executor::multithread_with_name(threads, "tract")
    } else {
        Executor::SingleThread
    };
    Ok(TractModel {
        plan,
        executor,
        inputs,
        outputs,
    })
}

impl PreparedModel for TractModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let values: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
        let out = multithread_tract_scope(self.executor.clone(), || self.plan.run(values))
            .map_err(|e| BackendError::Run {
                backend: NAME,
                message: format!("{e:#}"),
            })?;
        Ok(out.into_iter().map(TValue::into_tensor).collect())
    }
}
