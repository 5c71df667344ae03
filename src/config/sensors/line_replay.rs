//! `type = "line_replay"`: a text file of delimited numbers, one record per line.

use super::kind::{file_replay_facts, SensorFacts, SensorKind};
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

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
    #[serde(default = "super::comma")]
    pub delimiter: char,
    /// Records per second; as fast as possible when absent.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

impl SensorKind for LineReplayConfig {
    const TYPE: &'static str = "line_replay";
}

impl SensorFacts for LineReplayConfig {
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Record)
    }

    file_replay_facts!();

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        crate::config::check_file(&self.path, &format!("{path}.path"), errors);
        if self.delimiter == '\n' || self.delimiter == '\r' {
            errors.push(ConfigError::new(
                format!("{path}.delimiter"),
                "must not be a line break",
            ));
        }
    }
}
