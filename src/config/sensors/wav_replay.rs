//! `type = "wav_replay"`: a WAV file as sliding mono windows.

use super::kind::{file_replay_facts, SensorFacts, SensorKind};
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

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

impl SensorKind for WavReplayConfig {
    const TYPE: &'static str = "wav_replay";
}

impl SensorFacts for WavReplayConfig {
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Audio)
    }

    file_replay_facts!();

    fn window(&self) -> Option<usize> {
        Some(self.window)
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        crate::config::check_file(&self.path, &format!("{path}.path"), errors);
        super::check_window(self.window, self.hop, path, errors);
    }
}
