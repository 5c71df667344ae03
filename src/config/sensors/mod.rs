//! `[[sensors]]`: frame sources, each feeding one model.
//!
//! A sensor table mixes keys common to every sensor (`id`, `model`, `queue`) with keys of its `type`.
//! It is split in two before deserializing so that both halves still reject unknown keys (serde's
//! `flatten` cannot be combined with `deny_unknown_fields`).

mod audio;
mod camera;
mod command;
mod image_replay;
mod kind;
mod line_replay;
mod recording;
mod serial;
mod wav_replay;

pub use audio::AudioConfig;
pub use camera::{CameraConfig, PixelFormat};
pub use command::{CommandConfig, StreamFormat};
pub use image_replay::ImageReplayConfig;
pub use kind::{SensorFacts, SensorKind};
pub use line_replay::LineReplayConfig;
pub use recording::{RecordingConfig, Timing};
pub use serial::{FlowControl, LengthPrefix, Parity, SampleType, SerialConfig, SerialFraming};
pub use wav_replay::WavReplayConfig;

use super::section::section;
use super::{check_id, ConfigError};
use serde::Deserialize;

/// Declares `SourceConfig`, one variant per sensor kind, and what is generated from that list:
/// the `type` names, parsing by `type`, and access to a kind's [`SensorFacts`]. Adding a sensor
/// kind is its settings file here (a [`SensorKind`]), its source under `src/sensor/`, and a line
/// in the list below.
macro_rules! sensor_kinds {
    ($($(#[$doc:meta])* $variant:ident($config:ty),)*) => {
        /// Type-specific sensor settings, chosen by the sensor's `type`.
        #[derive(Debug, Clone)]
        pub enum SourceConfig {
            $($(#[$doc])* $variant($config),)*
        }

        impl SourceConfig {
            /// Every sensor `type`, in the order the docs list them.
            pub const TYPES: &'static [&'static str] = &[$(<$config as SensorKind>::TYPE),*];

            /// The settings of a sensor of type `kind` from its type-specific keys; `None` for
            /// an unknown type, `Some(None)` when the keys do not deserialize (errors recorded).
            fn parse(
                kind: &str,
                keys: &toml::Value,
                path: &str,
                errors: &mut Vec<ConfigError>,
            ) -> Option<Option<SourceConfig>> {
                $(if kind == <$config as SensorKind>::TYPE {
                    return Some(section(keys, path, errors).map(SourceConfig::$variant));
                })*
                None
            }

            /// The sensor's `type` as written in the config.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(SourceConfig::$variant(_) => <$config as SensorKind>::TYPE,)*
                }
            }

            /// What these settings tell the rest of the daemon.
            pub fn facts(&self) -> &dyn SensorFacts {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }

            /// The same, to change (paths resolved against the config file's folder).
            pub fn facts_mut(&mut self) -> &mut dyn SensorFacts {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

/// One sensor: where frames come from, which model they feed, and how its queue behaves.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Unique id; appears in topics and predictions.
    pub id: String,
    /// Id of the model that infers on this sensor's frames.
    pub model: String,
    /// Queue between this sensor and its model's worker.
    pub queue: QueueConfig,
    /// Which predictions the outbox sends first and drops last.
    pub priority: Priority,
    /// Type-specific settings.
    pub source: SourceConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    id: String,
    model: String,
    #[serde(default)]
    queue: Option<QueueConfig>,
    #[serde(default)]
    priority: Priority,
}

/// A sensor's standing in the outbox: after an outage higher priorities are sent first, and when
/// the outbox is full lower priorities are dropped or thinned first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Sent first, dropped last.
    High,
    /// The default.
    #[default]
    Normal,
    /// Sent last, dropped first.
    Low,
}

/// Bounded queue from a sensor to its model's worker.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Frames waiting at most.
    pub capacity: usize,
    /// What a full queue does with a new frame.
    pub overflow: Overflow,
}

/// Policy of a full sensor queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The sensor waits (replay sources: a file can wait, and every frame counts).
    Block,
    /// The oldest waiting frame is dropped and counted (live sources: latency stays bounded).
    DropOldest,
    /// The new frame is dropped and counted.
    DropNewest,
}

sensor_kinds! {
    /// `type = "image_replay"`.
    ImageReplay(ImageReplayConfig),
    /// `type = "wav_replay"`.
    WavReplay(WavReplayConfig),
    /// `type = "line_replay"`.
    LineReplay(LineReplayConfig),
    /// `type = "camera"`: a V4L2 camera.
    Camera(CameraConfig),
    /// `type = "command"`: frames a program writes to its standard output.
    Command(CommandConfig),
    /// `type = "audio"`: an audio input through ALSA.
    Audio(AudioConfig),
    /// `type = "serial"`: records read from a serial port.
    Serial(SerialConfig),
    /// `type = "recording"`: a file made by `edgeinfer record`, replayed.
    Recording(RecordingConfig),
}

pub(super) fn comma() -> char {
    ','
}

const COMMON_KEYS: &[&str] = &["id", "model", "queue", "priority"];

/// Deserializes one `[[sensors]]` element, recording every problem under `path`.
pub(super) fn parse_sensor(
    value: &toml::Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<SensorConfig> {
    let Some(table) = value.as_table() else {
        errors.push(ConfigError::new(path, "expected a table"));
        return None;
    };
    let kind = match table.get("type") {
        Some(toml::Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(ConfigError::new(
                format!("{path}.type"),
                format!("expected a string, found {}", other.type_str()),
            ));
            None
        }
        None => {
            errors.push(ConfigError::new(
                format!("{path}.type"),
                format!("missing; one of: {}", SourceConfig::TYPES.join(", ")),
            ));
            None
        }
    };
    let mut common = toml::Table::new();
    let mut specific = toml::Table::new();
    for (k, v) in table {
        if COMMON_KEYS.contains(&k.as_str()) {
            common.insert(k.clone(), v.clone());
        } else if k != "type" {
            specific.insert(k.clone(), v.clone());
        }
    }
    let common: Option<Common> = section(&toml::Value::Table(common), path, errors);
    let specific = toml::Value::Table(specific);
    let kind = kind?;
    let Some(source) = SourceConfig::parse(kind, &specific, path, errors) else {
        errors.push(ConfigError::new(
            format!("{path}.type"),
            format!(
                "unknown sensor type \"{kind}\"; one of: {}",
                SourceConfig::TYPES.join(", ")
            ),
        ));
        return None;
    };
    let source = source?;
    let common = common?;
    Some(SensorConfig {
        id: common.id,
        model: common.model,
        queue: common
            .queue
            .unwrap_or_else(|| source.facts().default_queue()),
        priority: common.priority,
        source,
    })
}

impl SensorConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        if self.queue.capacity == 0 || self.queue.capacity > 4096 {
            errors.push(ConfigError::new(
                format!("{path}.queue.capacity"),
                "must be 1-4096",
            ));
        }
        if let Some(rate) = self.source.facts().rate() {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
                errors.push(ConfigError::new(
                    format!("{path}.rate"),
                    "must be more than 0 and at most 10000 per second",
                ));
            }
        }
        self.source.facts().validate(path, errors);
    }
}

/// Sliding-window sizes shared by WAV replay and live audio.
pub(super) fn check_window(window: usize, hop: usize, path: &str, errors: &mut Vec<ConfigError>) {
    const MAX: usize = 10_000_000;
    if window == 0 || window > MAX {
        errors.push(ConfigError::new(
            format!("{path}.window"),
            format!("must be 1-{MAX} samples"),
        ));
    }
    if hop == 0 || hop > MAX {
        errors.push(ConfigError::new(
            format!("{path}.hop"),
            format!("must be 1-{MAX} samples"),
        ));
    }
}
