//! Configuration: TOML → typed structs, then `validate()` that reports every problem with its key path.
//!
//! Loading happens in two passes so that one mistake does not hide the next: the text is parsed as a
//! TOML table first (syntax errors keep their line and column), then each section and each array element
//! is deserialized on its own, collecting every error with its key path. Semantic checks (references,
//! files, ranges) run last, on whatever deserialized.

pub mod device;
mod error;
mod homeassistant;
mod metrics;
mod models;
mod mqtt;
mod onnxruntime;
mod outbox;
mod parse;
mod remote;
mod section;
mod sensors;

pub use device::DeviceConfig;
pub use error::{ConfigError, LoadError};
pub use homeassistant::{discovery_id, HomeAssistantConfig};
pub use metrics::MetricsConfig;
pub use models::{
    Activation, BoxFormat, ChannelOrder, DetectConfig, DetectFormat, ImagePreprocess, Layout,
    ModelConfig, OrtOptions, PostprocessConfig, PreprocessConfig, BACKEND_NAMES,
};
pub use mqtt::{BrokerAddress, MqttConfig, TlsConfig};
pub use onnxruntime::OnnxRuntimeConfig;
pub use outbox::{Durability, OutboxConfig, WhenFull};
pub use remote::{decode_public_key, OtaConfig, RemoteConfig};
pub use sensors::{
    AudioConfig, CameraConfig, CommandConfig, FlowControl, ImageReplayConfig, LengthPrefix,
    LineReplayConfig, Overflow, Parity, PixelFormat, Priority, QueueConfig, RecordingConfig,
    SampleType, SensorConfig, SerialConfig, SerialFraming, SourceConfig, StreamFormat, Timing,
    WavReplayConfig,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The whole daemon configuration, as read from one TOML file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Identity of this device and where it keeps its state.
    pub device: DeviceConfig,
    /// Models that sensors feed, by id.
    pub models: Vec<ModelConfig>,
    /// Frame sources.
    pub sensors: Vec<SensorConfig>,
    /// Durable buffer of predictions not yet acknowledged by the broker.
    pub outbox: OutboxConfig,
    /// Uplink; without it predictions stay in the outbox.
    pub mqtt: Option<MqttConfig>,
    /// Prometheus endpoint; off without it.
    pub metrics: Option<MetricsConfig>,
    /// Management over MQTT; off without it.
    pub remote: Option<RemoteConfig>,
    /// Which onnxruntime library the `ort-*` backends load; searched for without it.
    pub onnxruntime: OnnxRuntimeConfig,
    /// Home Assistant discovery; off without it (or with `enabled = false`).
    pub homeassistant: Option<HomeAssistantConfig>,
}

/// The default configuration printed by `edgeinfer print-default-config`: every key, documented.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

impl Config {
    /// Reads, parses and validates a config file; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, &base).map_err(|err| err.in_file(path))
    }

    /// Parses and validates TOML text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, LoadError> {
        let parsed = parse::parse_config(text)?;
        let mut config = parsed.config;
        config.resolve_paths(base);
        let mut errors = parsed.errors;
        errors.extend(config.validate_with(&Skip {
            broken_model_ids: &parsed.broken_model_ids,
            device_broken: parsed.device_broken,
            model_positions: &parsed.model_positions,
            sensor_positions: &parsed.sensor_positions,
            sensors_in_file: parsed.sensors_in_file,
        }));
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(LoadError::Invalid {
                file: PathBuf::new(),
                errors,
            })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.device.data_dir);
        if let Some(library) = self.onnxruntime.library.as_mut() {
            if !library.as_os_str().is_empty() {
                resolve(library);
            }
        }
        for model in &mut self.models {
            resolve(&mut model.path);
            match &mut model.postprocess {
                PostprocessConfig::Classify {
                    labels: Some(l), ..
                } => resolve(l),
                PostprocessConfig::Detect(DetectConfig {
                    labels: Some(l), ..
                }) => resolve(l),
                _ => {}
            }
        }
        if let Some(tls) = self.mqtt.as_mut().and_then(|m| m.tls.as_mut()) {
            tls.resolve_paths(resolve);
        }
        for sensor in &mut self.sensors {
            sensor
                .source
                .facts_mut()
                .paths_mut()
                .into_iter()
                .for_each(resolve);
        }
    }

    /// Every semantic problem, each with its key path. Empty means the config can run.
    pub fn validate(&self) -> Vec<ConfigError> {
        self.validate_with(&Skip {
            broken_model_ids: &HashSet::new(),
            device_broken: false,
            model_positions: &[],
            sensor_positions: &[],
            sensors_in_file: self.sensors.len(),
        })
    }

    /// `validate`, minus follow-on errors of parts that already failed to deserialize.
    fn validate_with(&self, skip: &Skip<'_>) -> Vec<ConfigError> {
        let broken_model_ids = skip.broken_model_ids;
        let mut errors = Vec::new();
        if !skip.device_broken {
            self.device.validate("device", &mut errors);
        }
        let mut model_ids = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let path = format!(
                "models[{}]",
                skip.model_positions.get(i).copied().unwrap_or(i)
            );
            if !model_ids.insert(model.id.as_str()) {
                errors.push(ConfigError::new(
                    format!("{path}.id"),
                    format!("duplicate model id \"{}\"", model.id),
                ));
            }
            model.validate(&path, &mut errors);
        }
        let mut sensor_ids = HashSet::new();
        for (i, sensor) in self.sensors.iter().enumerate() {
            let path = format!(
                "sensors[{}]",
                skip.sensor_positions.get(i).copied().unwrap_or(i)
            );
            if !sensor_ids.insert(sensor.id.as_str()) {
                errors.push(ConfigError::new(
                    format!("{path}.id"),
                    format!("duplicate sensor id \"{}\"", sensor.id),
                ));
            }
            sensor.validate(&path, &mut errors);
            match self.models.iter().find(|m| m.id == sensor.model) {
                None if broken_model_ids.contains(&sensor.model) => {}
                None => errors.push(ConfigError::new(
                    format!("{path}.model"),
                    format!("no model with id \"{}\"", sensor.model),
                )),
                Some(model) => {
                    let given = model.preprocess.frame_kind();
                    if let Some(wanted) = sensor.source.facts().frame_kind().filter(|w| *w != given)
                    {
                        errors.push(ConfigError::new(
                            format!("{path}.model"),
                            format!(
                                "model \"{}\" pre-processes {given} frames but this sensor produces {wanted} frames",
                                model.id
                            ),
                        ));
                    }
                }
            }
        }
        if skip.sensors_in_file == 0 {
            errors.push(ConfigError::new(
                "sensors",
                "no sensors configured: add at least one [[sensors]] table",
            ));
        }
        self.outbox.validate("outbox", &mut errors);
        self.onnxruntime.validate("onnxruntime", &mut errors);
        if let Some(metrics) = &self.metrics {
            metrics.validate("metrics", &mut errors);
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate("mqtt", &mut errors);
        }
        if let Some(remote) = &self.remote {
            remote.validate("remote", &mut errors);
            if self.mqtt.is_none() {
                errors.push(ConfigError::new(
                    "remote",
                    "remote management needs an [mqtt] section",
                ));
            }
        }
        if let Some(ha) = self.homeassistant.as_ref().filter(|h| h.enabled) {
            self.validate_homeassistant(ha, &mut errors);
        }
        errors
    }

    /// `[homeassistant]` and what it relies on: the uplink, the status topic management publishes
    /// (availability), and sensor ids that stay apart as discovery ids.
    fn validate_homeassistant(&self, ha: &HomeAssistantConfig, errors: &mut Vec<ConfigError>) {
        ha.validate("homeassistant", errors);
        if self.mqtt.is_none() {
            errors.push(ConfigError::new(
                "homeassistant",
                "Home Assistant discovery needs an [mqtt] section",
            ));
        }
        if self.remote.is_none() {
            errors.push(ConfigError::new(
                "homeassistant",
                "Home Assistant reads the entities' availability from the status topic that [remote] publishes: add a [remote] section (an empty one will do)",
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, sensor) in self.sensors.iter().enumerate() {
            if let Some(other) = seen.insert(discovery_id(&sensor.id), &sensor.id) {
                if *other != sensor.id {
                    errors.push(ConfigError::new(
                        format!("sensors[{i}].id"),
                        format!("\"{}\" and \"{other}\" are the same Home Assistant id (dots read as _): rename one", sensor.id),
                    ));
                }
            }
        }
    }

    /// Where the outbox database lives.
    pub fn outbox_dir(&self) -> PathBuf {
        self.device.data_dir.join("outbox")
    }
}

/// What `validate` leaves out or renumbers after a partial parse.
struct Skip<'a> {
    /// Ids of models that failed to deserialize: references to them are not dangling.
    broken_model_ids: &'a HashSet<String>,
    /// `[device]` failed to deserialize.
    device_broken: bool,
    /// File positions of the deserialized models (identity when empty).
    model_positions: &'a [usize],
    /// File positions of the deserialized sensors (identity when empty).
    sensor_positions: &'a [usize],
    /// Sensor entries in the file, including those that failed to deserialize.
    sensors_in_file: usize,
}

/// Checks that `path` names an existing regular file, reporting under `key`.
pub(crate) fn check_file(path: &Path, key: &str, errors: &mut Vec<ConfigError>) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => errors.push(ConfigError::new(
            key,
            format!("{} is not a regular file", path.display()),
        )),
        Err(e) => errors.push(ConfigError::new(
            key,
            format!("file not found: {} ({e})", path.display()),
        )),
    }
}

/// True when `s` can be one level of an MQTT topic and a file name.
pub(crate) fn is_safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

pub(crate) fn check_id(id: &str, key: &str, errors: &mut Vec<ConfigError>) {
    if !is_safe_id(id) {
        errors.push(ConfigError::new(
            key,
            format!("\"{id}\" is not a valid id: use 1-64 characters from A-Z a-z 0-9 - _ ."),
        ));
    }
}

#[cfg(test)]
mod tests;
