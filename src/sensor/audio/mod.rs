//! `audio` sensors: audio inputs through cpal (ALSA).

use super::{FrameSource, Next, SensorError};
use crate::config::AudioConfig;

/// An audio input, opened by the capture loop and reopened when it goes away.
pub struct AudioSource {
    config: AudioConfig,
}

impl AudioSource {
    /// An audio source; the device is opened by `connect`.
    pub fn new(config: AudioConfig) -> Self {
        Self { config }
    }
}

impl FrameSource for AudioSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        Err(SensorError::Lost(format!(
            "{}: audio support is not built yet",
            self.config.device.as_deref().unwrap_or("default")
        )))
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        Err(SensorError::Lost("not connected".into()))
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }
}
