//! `type = "audio"`: an audio input (ALSA through cpal), cut into sliding mono windows.

use super::kind::{live_queue, SensorFacts, SensorKind};
use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;

/// An audio input device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// Input device name as the host lists it (for ALSA e.g. `hw:CARD=Device,DEV=0` or `default`);
    /// the system's default input device when absent.
    #[serde(default)]
    pub device: Option<String>,
    /// Sample rate of the windows handed to the model. Requested from the device; when the device
    /// does not offer it, the device's own rate is resampled to it.
    pub sample_rate: u32,
    /// Device rate to open instead of `sample_rate` (then resampled to `sample_rate`).
    #[serde(default)]
    pub device_rate: Option<u32>,
    /// Channels to open; the device's default when absent. Channels are averaged to mono.
    #[serde(default)]
    pub channels: Option<u16>,
    /// Samples per window, at `sample_rate`.
    pub window: usize,
    /// Samples between the starts of consecutive windows.
    pub hop: usize,
    /// Capacity of the buffer between the audio callback and the sensor thread, in milliseconds
    /// of audio. Samples arriving while it is full are dropped and counted.
    #[serde(default = "default_buffer_ms")]
    pub buffer_ms: u32,
}

fn default_buffer_ms() -> u32 {
    2000
}

const RATES: std::ops::RangeInclusive<u32> = 1000..=384_000;

impl SensorKind for AudioConfig {
    const TYPE: &'static str = "audio";
}

impl SensorFacts for AudioConfig {
    // Audio keeps a short backlog and drops the oldest.
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Audio)
    }

    fn default_queue(&self) -> QueueConfig {
        live_queue(8)
    }

    fn window(&self) -> Option<usize> {
        Some(self.window)
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if let Some(device) = &self.device {
            if device.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.device"),
                    "must not be empty; leave it out for the default device",
                ));
            }
        }
        for (key, rate) in [
            ("sample_rate", Some(self.sample_rate)),
            ("device_rate", self.device_rate),
        ] {
            if rate.is_some_and(|r| !RATES.contains(&r)) {
                errors.push(ConfigError::new(
                    format!("{path}.{key}"),
                    format!("must be {}-{} Hz", RATES.start(), RATES.end()),
                ));
            }
        }
        if self.channels.is_some_and(|c| !(1..=32).contains(&c)) {
            errors.push(ConfigError::new(format!("{path}.channels"), "must be 1-32"));
        }
        super::check_window(self.window, self.hop, path, errors);
        if !(10..=60_000).contains(&self.buffer_ms) {
            errors.push(ConfigError::new(
                format!("{path}.buffer_ms"),
                "must be 10-60000 ms",
            ));
        }
    }
}
