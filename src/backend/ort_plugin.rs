//! OpenVINO as onnxruntime's plugin execution provider: stock onnxruntime (1.23 or later) loads
//! the provider library that the `onnxruntime-ep-openvino` wheel ships, named by
//! `ORT_OPENVINO_PLUGIN`. Registered once per process, on the shared environment; its devices
//! are then listed by the environment, and a session is given the device it runs on.
//!
//! Once a plugin is registered, onnxruntime's automatic device selection (which the `ort` crate
//! turns on for every session) would hand `ort-cpu` sessions to it too, so those are pinned to
//! onnxruntime's own CPU device from then on.

use crate::config::OrtOptions;
use ort::device::Device;
use ort::environment::Environment;
use ort::memory::DeviceType;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The execution provider the plugin registers.
const OPENVINO: &str = "OpenVINOExecutionProvider";
/// onnxruntime's own CPU provider.
const CPU: &str = "CPUExecutionProvider";

/// The plugin registered, or why it could not be; `None` when `ORT_OPENVINO_PLUGIN` is unset.
static REGISTERED: OnceLock<Option<Result<PathBuf, String>>> = OnceLock::new();

/// Registers the plugin of `ORT_OPENVINO_PLUGIN` on `env` the first time; `Ok(None)` when no
/// plugin is configured.
pub(super) fn registered(env: &Environment) -> Result<Option<&'static PathBuf>, String> {
    let state = REGISTERED.get_or_init(|| {
        let path = std::env::var_os("ORT_OPENVINO_PLUGIN").filter(|v| !v.is_empty())?;
        let path = PathBuf::from(path);
        let result = env
            .register_ep_library("openvino", &path)
            .map(|()| path.clone())
            .map_err(|e| format!("ORT_OPENVINO_PLUGIN={}: {e}", path.display()));
        match &result {
            Ok(p) => tracing::info!(plugin = %p.display(), "OpenVINO plugin registered"),
            Err(e) => tracing::warn!(error = %e, "OpenVINO plugin not registered"),
        }
        Some(result)
    });
    match state {
        None => Ok(None),
        Some(Ok(path)) => Ok(Some(path)),
        Some(Err(e)) => Err(e.clone()),
    }
}

/// The OpenVINO device a model asks for (`openvino_device`), `CPU` by default.
pub(super) fn device(options: &OrtOptions) -> &str {
    options.openvino_device.as_deref().unwrap_or("CPU")
}

/// The device class of a device name such as `GPU.1`: what OpenVINO's `load_config` is keyed by.
fn class(device: &str) -> &str {
    device.split('.').next().unwrap_or(device)
}

/// The plugin's devices of `device_type` (`CPU`, `GPU`, `NPU`).
fn openvino_devices<'e>(env: &'e Environment, device_type: &str) -> Vec<Device<'e>> {
    let wanted = match class(device_type) {
        "GPU" => DeviceType::GPU,
        "NPU" => DeviceType::NPU,
        _ => DeviceType::CPU,
    };
    env.devices()
        .filter(|d| d.ep().ok() == Some(OPENVINO) && d.hardware_device().ty() == wanted)
        .collect()
}

/// Whether the plugin serves `device_type` here, and if not, why.
pub(super) fn check(env: &Environment, path: &Path, device_type: &str) -> Result<(), String> {
    if !openvino_devices(env, device_type).is_empty() {
        return Ok(());
    }
    let vendor = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("vendor_id")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    Err(format!(
        "the OpenVINO plugin {} lists no {device_type} device here: it serves Intel hardware only, and this CPU's vendor is {vendor}",
        path.display()
    ))
}

/// Devices and their options for a session.
pub(super) type SessionDevices<'e> = Option<(Vec<Device<'e>>, Vec<(String, String)>)>;

/// While a plugin is registered, onnxruntime's own CPU device, for `ort-cpu` sessions; `None`
/// otherwise (the CPU provider is then appended the classic way).
pub(super) fn cpu_session(env: &Environment) -> Result<SessionDevices<'_>, String> {
    if registered(env)?.is_none() {
        return Ok(None);
    }
    let cpu: Vec<Device<'_>> = env.devices().filter(|d| d.ep().ok() == Some(CPU)).collect();
    Ok(Some((cpu, Vec::new())))
}

/// With a plugin registered, its device for an `ort-openvino` session, and OpenVINO's properties
/// for it; `None` without a plugin (the provider built into the library is used then).
pub(super) fn openvino_session<'e>(
    env: &'e Environment,
    options: &OrtOptions,
    threads: Option<usize>,
) -> Result<SessionDevices<'e>, String> {
    if registered(env)?.is_none() {
        return Ok(None);
    }
    let device = device(options);
    let devices = openvino_devices(env, device);
    // The plugin ignores the classic options (device_type, precision, num_of_threads): OpenVINO's
    // own properties go in load_config. f32 unless fp16, whatever the CPU would pick by default
    // (bf16 where it has it, which changes results).
    let mut properties = serde_json::Map::new();
    let precision = if options.fp16 { "f16" } else { "f32" };
    properties.insert("INFERENCE_PRECISION_HINT".into(), precision.into());
    if let Some(n) = threads {
        properties.insert("INFERENCE_NUM_THREADS".into(), n.to_string().into());
    }
    let load_config = serde_json::json!({ class(device): properties }).to_string();
    Ok(Some((
        devices,
        vec![(format!("{OPENVINO}.load_config"), load_config)],
    )))
}
