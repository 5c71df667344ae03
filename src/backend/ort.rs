//! The onnxruntime backend (cargo feature `ort`), one backend per execution provider.
//!
//! The library is loaded at run time (`load-dynamic`), found as `ort_library` describes:
//! `ORT_DYLIB_PATH`, `[onnxruntime] library`, a system or JetPack onnxruntime (with CUDA and
//! TensorRT on a Jetson), then the copy the package bundles. Nothing is downloaded at build time. A
//! missing or unusable library makes every `ort-*` backend report "not available" rather than fail.

use super::ort_library;
use super::ort_plugin;
use super::{Backend, BackendError, PrepareOptions, PreparedModel, TensorSpec};
use crate::config::OrtOptions;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, ValueType};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tract_onnx::prelude::{DatumType, Tensor};

/// An onnxruntime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// onnxruntime's own CPU kernels.
    Cpu,
    /// NVIDIA GPUs (Jetson, desktop).
    Cuda,
    /// NVIDIA TensorRT (Jetson); builds an engine per model, cached in `trt_engine_cache`.
    TensorRt,
    /// Intel CPU/GPU/NPU through OpenVINO; Movidius MYRIAD sticks need OpenVINO 2022.3.
    OpenVino,
    /// Android NNAPI (deprecated from Android 15).
    Nnapi,
}

/// Accelerators in the order `auto` tries them.
pub const ACCELERATORS: &[Provider] = &[
    Provider::TensorRt,
    Provider::Cuda,
    Provider::OpenVino,
    Provider::Nnapi,
];

impl Provider {
    fn backend_name(self) -> &'static str {
        match self {
            Provider::Cpu => "ort-cpu",
            Provider::Cuda => "ort-cuda",
            Provider::TensorRt => "ort-tensorrt",
            Provider::OpenVino => "ort-openvino",
            Provider::Nnapi => "ort-nnapi",
        }
    }
}

/// onnxruntime with one execution provider.
pub struct OrtBackend {
    provider: Provider,
    options: OrtOptions,
}

impl OrtBackend {
    /// A backend for `provider` with its options.
    pub fn new(provider: Provider, options: OrtOptions) -> Self {
        Self { provider, options }
    }

    fn dispatch(&self) -> ep::ExecutionProviderDispatch {
        let o = &self.options;
        let device = o.device_id as i32;
        match self.provider {
            // The memory arena is what Python onnxruntime uses by default; without it every run
            // allocates its intermediate tensors afresh.
            Provider::Cpu => ep::CPU::default().with_arena_allocator(true).build(),
            Provider::Cuda => ep::CUDA::default()
                .with_device_id(device)
                .build()
                .error_on_failure(),
            Provider::TensorRt => {
                let mut trt = ep::TensorRT::default()
                    .with_device_id(device)
                    .with_fp16(o.fp16);
                if let Some(dir) = &o.trt_engine_cache {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display());
                }
                trt.build().error_on_failure()
            }
            Provider::OpenVino => {
                let device = ort_plugin::device(o);
                let mut ov = ep::OpenVINO::default().with_device_type(device);
                if o.fp16 {
                    ov = ov.with_precision("FP16");
                }
                ov.build().error_on_failure()
            }
            Provider::Nnapi => ep::NNAPI::default()
                .with_fp16(o.fp16)
                .build()
                .error_on_failure(),
        }
    }

    fn provider_compiled(&self) -> Result<bool, String> {
        match self.provider {
            Provider::Cpu => Ok(true),
            Provider::Cuda => ep::CUDA::is_available(),
            Provider::TensorRt => ep::TensorRT::is_available(),
            Provider::OpenVino => ep::OpenVINO::is_available(),
            Provider::Nnapi => ep::NNAPI::is_available(),
        }
        .map_err(|e| e.to_string())
    }
}

/// The library path from `[onnxruntime] library`, set at start-up and on each reload.
static CONFIGURED_LIBRARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets `[onnxruntime] library` (`None` when the config has no such key). The library is loaded
/// once per process, when a backend first needs it: a change after that is logged and takes
/// effect at the next start.
pub fn configure_library(path: Option<PathBuf>) {
    if let Some((in_effect, _)) = ENV.get() {
        if *in_effect != path {
            tracing::warn!(
                "[onnxruntime] library changed; onnxruntime is loaded once per process, so the change takes effect at the next start"
            );
        }
    }
    *CONFIGURED_LIBRARY.lock().unwrap_or_else(|p| p.into_inner()) = path;
}

/// The onnxruntime environment and the library it came from.
struct Loaded {
    environment: Environment,
}

/// The `[onnxruntime] library` setting the search ran with, and what it found.
static ENV: OnceLock<(Option<PathBuf>, Result<Loaded, String>)> = OnceLock::new();

/// The process-wide onnxruntime environment, or why no library could be loaded. The first call
/// searches for the library (see `ort_library`) and logs, in one line, what it loaded or why it
/// found none.
fn environment() -> Result<&'static Environment, String> {
    let (_, loaded) = ENV.get_or_init(|| {
        let env = std::env::var_os("ORT_DYLIB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let config = CONFIGURED_LIBRARY
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let loaded = load(env.as_deref(), config.as_deref());
        if let Err(reason) = &loaded {
            tracing::warn!("onnxruntime not loaded, so the ort-* backends are off: {reason}");
        }
        (config, loaded)
    });
    loaded
        .as_ref()
        .map(|l| &l.environment)
        .map_err(Clone::clone)
}

/// Tries the candidates in order: the first that passes every check becomes the environment.
fn load(env: Option<&Path>, config: Option<&Path>) -> Result<Loaded, String> {
    let candidates = ort_library::candidates(env, config);
    if candidates.is_empty() {
        return Err(format!(
            "no libonnxruntime.so found (ORT_DYLIB_PATH and [onnxruntime] library are unset; searched {})",
            ort_library::searched_places()
        ));
    }
    let mut refused = Vec::new();
    for candidate in candidates {
        let opened = match ort_library::open(&candidate.path) {
            Ok(opened) => opened,
            Err(e) => {
                refused.push(format!("{}: {e}", candidate.source));
                continue;
            }
        };
        // Loading a foreign library can fail in ways the wrapper reports by panicking; keep
        // that from taking the daemon down.
        let built = std::panic::catch_unwind(|| {
            ort::init_from(&candidate.path)
                .map_err(|e| e.to_string())
                .and_then(|b| b.with_name("edgeinfer").build().map_err(|e| e.to_string()))
        })
        .unwrap_or_else(|_| Err("the library panicked while loading".into()));
        match built {
            Ok(environment) => {
                tracing::info!(
                    version = %opened.version,
                    path = %candidate.path.display(),
                    source = %candidate.source,
                    passed_over = %refused.join("; "),
                    "onnxruntime loaded"
                );
                return Ok(Loaded { environment });
            }
            Err(e) => refused.push(format!(
                "{}: {}: {e}",
                candidate.source,
                candidate.path.display()
            )),
        }
    }
    Err(refused.join("; "))
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        self.provider.backend_name()
    }

    fn check(&self) -> Result<(), String> {
        let env = environment()?;
        if self.provider == Provider::OpenVino {
            if let Some(plugin) = ort_plugin::registered(env)? {
                return ort_plugin::check(env, plugin, ort_plugin::device(&self.options));
            }
        }
        if self.provider_compiled()? {
            Ok(())
        } else {
            Err("the loaded onnxruntime library was built without this execution provider".into())
        }
    }

    fn prepare(
        &self,
        path: &Path,
        options: &PrepareOptions,
    ) -> Result<Box<dyn PreparedModel>, BackendError> {
        let name = self.name();
        let load_err = |message: String| BackendError::Load {
            backend: name,
            path: path.to_path_buf(),
            message,
        };
        let env = environment().map_err(|reason| BackendError::Unavailable {
            backend: name.into(),
            reason,
        })?;
        let mut builder = Session::builder(env).map_err(|e| load_err(e.to_string()))?;
        if let Some(threads) = options.threads {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| load_err(e.to_string()))?;
        }
        let devices = match self.provider {
            Provider::Cpu => ort_plugin::cpu_session(env),
            Provider::OpenVino => ort_plugin::openvino_session(env, &self.options, options.threads),
            _ => Ok(None),
        }
        .map_err(load_err)?;
        let mut builder = match devices {
            Some((devices, ep_options)) => builder.with_devices(devices, Some(&ep_options)),
            None => builder.with_execution_providers([self.dispatch()]),
        }
        .map_err(|e| load_err(e.to_string()))?;
        let session = builder
            .commit_from_file(path)
            .map_err(|e| load_err(e.to_string()))?;

        let known: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for n in options.overrides.keys().chain(options.constants.keys()) {
            if !known.contains(n) {
                return Err(BackendError::UnknownInput {
                    name: n.clone(),
                    known: known.join(", "),
                });
            }
        }
        let mut inputs = Vec::new();
        for outlet in session.inputs() {
            let (ty, dims) = match outlet.dtype() {
                ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
                other => {
                    return Err(load_err(format!(
                        "input \"{}\" is not a tensor ({other:?})",
                        outlet.name()
                    )))
                }
            };
            let model_dt = datum_type(ty).ok_or_else(|| {
                load_err(format!(
                    "input \"{}\" has unsupported type {ty:?}",
                    outlet.name()
                ))
            })?;
            let (dt, shape) = match options.overrides.get(outlet.name()) {
                Some((dt, shape)) => (dt.unwrap_or(model_dt), shape.clone()),
                None if dims.iter().all(|d| *d >= 0) => {
                    (model_dt, dims.iter().map(|d| *d as usize).collect())
                }
                None => {
                    return Err(BackendError::DynamicInput {
                        name: outlet.name().to_string(),
                        shape: format!("{dims:?}"),
                    })
                }
            };
            inputs.push(TensorSpec {
                name: outlet.name().to_string(),
                datum_type: dt,
                shape,
            });
        }
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Ok(Box::new(OrtModel {
            backend: name,
            session: Mutex::new(session),
            inputs,
            outputs,
        }))
    }
}

struct OrtModel {
    backend: &'static str,
    /// onnxruntime sessions run with `&mut`; one model serves one worker thread, so this lock is
    /// uncontended in the daemon.
    session: Mutex<Session>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<String>,
}

fn datum_type(ty: TensorElementType) -> Option<DatumType> {
    Some(match ty {
        TensorElementType::Float32 => DatumType::F32,
        TensorElementType::Float64 => DatumType::F64,
        TensorElementType::Int64 => DatumType::I64,
        TensorElementType::Int32 => DatumType::I32,
        TensorElementType::Int16 => DatumType::I16,
        TensorElementType::Int8 => DatumType::I8,
        TensorElementType::Uint8 => DatumType::U8,
        TensorElementType::Bool => DatumType::Bool,
        _ => return None,
    })
}

macro_rules! by_type {
    ($dt:expr, $body:ident) => {
        match $dt {
            DatumType::F32 => $body!(f32),
            DatumType::F64 => $body!(f64),
            DatumType::I64 => $body!(i64),
            DatumType::I32 => $body!(i32),
            DatumType::I16 => $body!(i16),
            DatumType::I8 => $body!(i8),
            DatumType::U8 => $body!(u8),
            DatumType::Bool => $body!(bool),
            other => return Err(format!("unsupported tensor type {other:?}")),
        }
    };
}

/// A view of `t` as an onnxruntime input, without copying its data.
fn to_ort(t: &Tensor) -> Result<SessionInputValue<'_>, String> {
    let shape: Vec<i64> = t.shape().iter().map(|d| *d as i64).collect();
    let view = t.try_as_plain_ram().map_err(|e| e.to_string())?;
    macro_rules! make {
        ($ty:ty) => {{
            let data: &[$ty] = view.as_slice::<$ty>().map_err(|e| e.to_string())?;
            SessionInputValue::from(
                ort::value::TensorRef::from_array_view((shape, data))
                    .map_err(|e| e.to_string())?
                    .into_dyn(),
            )
        }};
    }
    Ok(by_type!(t.datum_type(), make))
}

fn from_ort(v: &DynValue) -> Result<Tensor, String> {
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(format!("output is not a tensor ({other:?})")),
    };
    let dt = datum_type(ty).ok_or_else(|| format!("unsupported output type {ty:?}"))?;
    macro_rules! read {
        ($ty:ty) => {{
            let (shape, data) = v.try_extract_tensor::<$ty>().map_err(|e| e.to_string())?;
            let shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
            Tensor::from_shape(&shape, data).map_err(|e| e.to_string())?
        }};
    }
    Ok(by_type!(dt, read))
}

impl PreparedModel for OrtModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let err = |message: String| BackendError::Run {
            backend: self.backend,
            message,
        };
        let values = inputs
            .iter()
            .zip(&self.inputs)
            .map(|(t, spec)| Ok((spec.name.clone(), to_ort(t)?)))
            .collect::<Result<Vec<(String, SessionInputValue<'_>)>, String>>()
            .map_err(err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(values).map_err(|e| err(e.to_string()))?;
        (0..self.outputs.len())
            .map(|i| from_ort(&outputs[i]).map_err(err))
            .collect()
    }
}
