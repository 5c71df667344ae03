//! `type = "recording"`: replays a file written by `edgeinfer record`.

use super::kind::{SensorFacts, SensorKind};
use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

/// A recording of a sensor's frames.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// The recording file.
    pub path: PathBuf,
    /// How frames are paced.
    #[serde(default)]
    pub timing: Timing,
    /// Start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

/// Pacing of a replayed recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// With the time between frames they were recorded with.
    #[default]
    Original,
    /// As fast as the pipeline takes them.
    Fast,
}

impl SensorKind for RecordingConfig {
    const TYPE: &'static str = "recording";
}

impl SensorFacts for RecordingConfig {
    fn frame_kind(&self) -> Option<FrameKind> {
        crate::recording::read_header(&self.path)
            .ok()
            .map(|h| h.kind)
    }

    fn default_queue(&self) -> QueueConfig {
        super::kind::file_queue()
    }

    fn looping(&self) -> bool {
        self.looping
    }

    fn paced_by_timestamps(&self) -> bool {
        self.timing == Timing::Original
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.path]
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let key = format!("{path}.path");
        crate::config::check_file(&self.path, &key, errors);
        if self.path.is_file() {
            if let Err(e) = crate::recording::read_header(&self.path) {
                errors.push(ConfigError::new(key, e.to_string()));
            }
        }
    }
}
