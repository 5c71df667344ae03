//! `[[sensors]]`: frame sources, each feeding one model.
//!
//! A sensor table mixes keys common to every sensor (`id`, `model`, `queue`) with keys of its `type`.
//! It is split in two before deserializing so that both halves still reject unknown keys (serde's
//! `flatten` cannot be combined with `deny_unknown_fields`).

mod audio;
mod camera;
mod recording;
mod serial;

pub use audio::AudioConfig;
pub use camera::{CameraConfig, PixelFormat};
pub use recording::{RecordingConfig, Timing};
pub use serial::{FlowControl, LengthPrefix, Parity, SampleType, SerialConfig, SerialFraming};

use super::parse::section;
use super::{check_id, ConfigError};
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

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

/// Type-specific sensor settings, chosen by the sensor's `type`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `type = "image_replay"`.
    ImageReplay(ImageReplayConfig),
    /// `type = "wav_replay"`.
    WavReplay(WavReplayConfig),
    /// `type = "line_replay"`.
    LineReplay(LineReplayConfig),
    /// `type = "camera"`: a V4L2 camera.
    Camera(CameraConfig),
    /// `type = "audio"`: an audio input through ALSA.
    Audio(AudioConfig),
    /// `type = "serial"`: records read from a serial port.
    Serial(SerialConfig),
    /// `type = "recording"`: a file made by `edgeinfer record`, replayed.
    Recording(RecordingConfig),
}

/// Replays a folder of JPEG/PNG files (sorted by name) or an MJPEG file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageReplayConfig {
    /// Folder of images, or a `.mjpeg`/`.mjpg` file of concatenated JPEG frames.
    pub path: PathBuf,
    /// Frames per second; as fast as the pipeline takes them when absent.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

/// Replays a WAV file as sliding mono windows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WavReplayConfig {
    /// The .wav file (PCM 8/16/24/32-bit or float; channels are averaged to mono).
    pub path: PathBuf,
    /// Samples per window.
    pub window: usize,
    /// Samples between the starts of consecutive windows.
    pub hop: usize,
    /// Windows per second; as fast as possible when absent (`sample_rate / hop` is real time).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

/// Replays a text file of delimited numbers, one record per line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineReplayConfig {
    /// The text file.
    pub path: PathBuf,
    /// Skip the first line (column names).
    #[serde(default)]
    pub header: bool,
    /// Field separator.
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Records per second; as fast as possible when absent.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

pub(super) fn comma() -> char {
    ','
}

const TYPES: &[&str] = &[
    "image_replay",
    "wav_replay",
    "line_replay",
    "camera",
    "audio",
    "serial",
    "recording",
];
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
                format!("missing; one of: {}", TYPES.join(", ")),
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
    let source = match kind? {
        "image_replay" => section(&specific, path, errors).map(SourceConfig::ImageReplay),
        "wav_replay" => section(&specific, path, errors).map(SourceConfig::WavReplay),
        "line_replay" => section(&specific, path, errors).map(SourceConfig::LineReplay),
        "camera" => section(&specific, path, errors).map(SourceConfig::Camera),
        "audio" => section(&specific, path, errors).map(SourceConfig::Audio),
        "serial" => section(&specific, path, errors).map(SourceConfig::Serial),
        "recording" => section(&specific, path, errors).map(SourceConfig::Recording),
        other => {
            errors.push(ConfigError::new(
                format!("{path}.type"),
                format!(
                    "unknown sensor type \"{other}\"; one of: {}",
                    TYPES.join(", ")
                ),
            ));
            None
        }
    }?;
    let common = common?;
    Some(SensorConfig {
        id: common.id,
        model: common.model,
        queue: common.queue.unwrap_or_else(|| source.default_queue()),
        priority: common.priority,
        source,
    })
}

impl SourceConfig {
    /// Kind of frames this source produces; for a recording, read from its header (`None` when the
    /// file cannot be read: `validate` reports that).
    pub fn frame_kind(&self) -> Option<FrameKind> {
        match self {
            SourceConfig::ImageReplay(_) | SourceConfig::Camera(_) => Some(FrameKind::Image),
            SourceConfig::WavReplay(_) | SourceConfig::Audio(_) => Some(FrameKind::Audio),
            SourceConfig::LineReplay(_) | SourceConfig::Serial(_) => Some(FrameKind::Record),
            SourceConfig::Recording(c) => {
                crate::recording::read_header(&c.path).ok().map(|h| h.kind)
            }
        }
    }

    /// The queue a sensor gets when its config has none. Files wait rather than lose frames (a
    /// file has no deadline); live sources never wait, so latency stays bounded: a camera keeps
    /// only the latest frame, audio and serial keep a short backlog and drop the oldest.
    fn default_queue(&self) -> QueueConfig {
        let (capacity, overflow) = match self {
            SourceConfig::ImageReplay(_)
            | SourceConfig::WavReplay(_)
            | SourceConfig::LineReplay(_)
            | SourceConfig::Recording(_) => (4, Overflow::Block),
            SourceConfig::Camera(_) => (1, Overflow::DropOldest),
            SourceConfig::Audio(_) => (8, Overflow::DropOldest),
            SourceConfig::Serial(_) => (256, Overflow::DropOldest),
        };
        QueueConfig { capacity, overflow }
    }

    /// The sensor's `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::ImageReplay(_) => "image_replay",
            SourceConfig::WavReplay(_) => "wav_replay",
            SourceConfig::LineReplay(_) => "line_replay",
            SourceConfig::Camera(_) => "camera",
            SourceConfig::Audio(_) => "audio",
            SourceConfig::Serial(_) => "serial",
            SourceConfig::Recording(_) => "recording",
        }
    }

    /// Frames per second, or `None` for as fast as the pipeline takes them.
    pub fn rate(&self) -> Option<f64> {
        match self {
            SourceConfig::ImageReplay(c) => c.rate,
            SourceConfig::WavReplay(c) => c.rate,
            SourceConfig::LineReplay(c) => c.rate,
            // Live sources are paced by their device; recordings by their timestamps.
            SourceConfig::Camera(_)
            | SourceConfig::Audio(_)
            | SourceConfig::Serial(_)
            | SourceConfig::Recording(_) => None,
        }
    }

    /// Whether the source starts again at its end.
    pub fn looping(&self) -> bool {
        match self {
            SourceConfig::ImageReplay(c) => c.looping,
            SourceConfig::WavReplay(c) => c.looping,
            SourceConfig::LineReplay(c) => c.looping,
            SourceConfig::Recording(c) => c.looping,
            SourceConfig::Camera(_) | SourceConfig::Audio(_) | SourceConfig::Serial(_) => false,
        }
    }
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
        if let Some(rate) = self.source.rate() {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
                errors.push(ConfigError::new(
                    format!("{path}.rate"),
                    "must be more than 0 and at most 10000 per second",
                ));
            }
        }
        match &self.source {
            SourceConfig::ImageReplay(c) => {
                if !c.path.exists() {
                    errors.push(ConfigError::new(
                        format!("{path}.path"),
                        format!("not found: {}", c.path.display()),
                    ));
                }
            }
            SourceConfig::WavReplay(c) => {
                super::check_file(&c.path, &format!("{path}.path"), errors);
                check_window(c.window, c.hop, path, errors);
            }
            SourceConfig::LineReplay(c) => {
                super::check_file(&c.path, &format!("{path}.path"), errors);
                if c.delimiter == '\n' || c.delimiter == '\r' {
                    errors.push(ConfigError::new(
                        format!("{path}.delimiter"),
                        "must not be a line break",
                    ));
                }
            }
            SourceConfig::Camera(c) => c.validate(path, errors),
            SourceConfig::Audio(c) => c.validate(path, errors),
            SourceConfig::Serial(c) => c.validate(path, errors),
            SourceConfig::Recording(c) => c.validate(path, errors),
        }
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
