//! TOML text → `Config`, collecting every deserialization error with its key path.

use super::section::section;
use super::{
    Config, ConfigError, DeviceConfig, HomeAssistantConfig, LoadError, MetricsConfig, MqttConfig,
    OnnxRuntimeConfig, OutboxConfig, RemoteConfig,
};
use std::collections::HashSet;
use std::path::PathBuf;

const SECTIONS: &[&str] = &[
    "device",
    "models",
    "sensors",
    "outbox",
    "mqtt",
    "metrics",
    "remote",
    "onnxruntime",
    "homeassistant",
];

/// A config as far as it deserialized, with the problems found on the way.
pub(super) struct Parsed {
    pub config: Config,
    pub errors: Vec<ConfigError>,
    /// Ids of `[[models]]` entries that failed to deserialize: references to them are not reported
    /// again as dangling.
    pub broken_model_ids: HashSet<String>,
    /// `[device]` failed to deserialize; its placeholder is not validated.
    pub device_broken: bool,
    /// Position in the file of each deserialized model, so that key paths name the right element.
    pub model_positions: Vec<usize>,
    /// Position in the file of each deserialized sensor.
    pub sensor_positions: Vec<usize>,
    /// `[[sensors]]` entries in the file, whether or not they deserialized.
    pub sensors_in_file: usize,
}

/// Parses the text; fails only on TOML syntax errors, which keep line and column.
pub(super) fn parse_config(text: &str) -> Result<Parsed, LoadError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let mut errors = Vec::new();
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.push(ConfigError::new(
                key.clone(),
                format!("unknown section, expected one of: {}", SECTIONS.join(", ")),
            ));
        }
    }

    let mut device_broken = false;
    let device = match table.get("device") {
        Some(v) => section::<DeviceConfig>(v, "device", &mut errors),
        None => {
            errors.push(ConfigError::new("device", "missing [device] table"));
            None
        }
    }
    .unwrap_or_else(|| {
        device_broken = true;
        DeviceConfig::placeholder()
    });

    let mut broken_model_ids = HashSet::new();
    let mut models = Vec::new();
    let mut model_positions = Vec::new();
    for (i, value) in array(&table, "models", &mut errors).iter().enumerate() {
        match section(value, &format!("models[{i}]"), &mut errors) {
            Some(m) => {
                models.push(m);
                model_positions.push(i);
            }
            None => {
                if let Some(id) = value.get("id").and_then(toml::Value::as_str) {
                    broken_model_ids.insert(id.to_string());
                }
            }
        }
    }

    let mut sensors = Vec::new();
    let mut sensor_positions = Vec::new();
    let sensor_values = array(&table, "sensors", &mut errors);
    let sensors_in_file = sensor_values.len();
    for (i, value) in sensor_values.iter().enumerate() {
        if let Some(s) = super::sensors::parse_sensor(value, &format!("sensors[{i}]"), &mut errors)
        {
            sensors.push(s);
            sensor_positions.push(i);
        }
    }

    let outbox = table
        .get("outbox")
        .and_then(|v| section::<OutboxConfig>(v, "outbox", &mut errors))
        .unwrap_or_default();
    let mqtt = table
        .get("mqtt")
        .and_then(|v| section::<MqttConfig>(v, "mqtt", &mut errors));
    let metrics = table
        .get("metrics")
        .and_then(|v| section::<MetricsConfig>(v, "metrics", &mut errors));
    let remote = table
        .get("remote")
        .and_then(|v| section::<RemoteConfig>(v, "remote", &mut errors));
    let onnxruntime = table
        .get("onnxruntime")
        .and_then(|v| section::<OnnxRuntimeConfig>(v, "onnxruntime", &mut errors))
        .unwrap_or_default();
    let homeassistant = table
        .get("homeassistant")
        .and_then(|v| section::<HomeAssistantConfig>(v, "homeassistant", &mut errors));

    Ok(Parsed {
        config: Config {
            device,
            models,
            sensors,
            outbox,
            mqtt,
            metrics,
            remote,
            onnxruntime,
            homeassistant,
        },
        errors,
        broken_model_ids,
        device_broken,
        model_positions,
        sensor_positions,
        sensors_in_file,
    })
}

fn array<'a>(
    table: &'a toml::Table,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> &'a [toml::Value] {
    match table.get(key) {
        None => &[],
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            errors.push(ConfigError::new(
                key,
                format!(
                    "expected an array of tables ([[{key}]]), found {}",
                    other.type_str()
                ),
            ));
            &[]
        }
    }
}

fn syntax_error(text: &str, err: &toml::de::Error) -> LoadError {
    let (line, column) = err
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((0, 0));
    LoadError::Syntax {
        file: PathBuf::new(),
        line,
        column,
        message: err.message().trim().to_string(),
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}
