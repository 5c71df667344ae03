//! `type = "image_replay"`: a folder of JPEG/PNG files (sorted by name) or an MJPEG file.

use super::kind::{file_replay_facts, SensorFacts, SensorKind};
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

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

impl SensorKind for ImageReplayConfig {
    const TYPE: &'static str = "image_replay";
}

impl SensorFacts for ImageReplayConfig {
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Image)
    }

    file_replay_facts!();

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if !self.path.exists() {
            errors.push(ConfigError::new(
                format!("{path}.path"),
                format!("not found: {}", self.path.display()),
            ));
        }
    }
}
