//! `type = "camera"`: a V4L2 capture device (USB/UVC cameras, Jetson CSI cameras).

use super::kind::{live_queue, SensorFacts, SensorKind};
use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;

/// A V4L2 camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// A device path (`/dev/video0`), or the card name the driver reports (as listed by
    /// `v4l2-ctl --list-devices`), which survives renumbering after a USB reset.
    pub device: String,
    /// Pixel format to negotiate.
    #[serde(default)]
    pub format: PixelFormat,
    /// Requested frame width; the driver may pick the nearest size it supports.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Requested frame height.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Requested frames per second; the driver's default when absent.
    #[serde(default)]
    pub fps: Option<u32>,
    /// Memory-mapped buffers queued with the driver.
    #[serde(default = "default_buffers")]
    pub buffers: u32,
}

/// Pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    /// MJPEG when the device offers it, otherwise YUYV.
    #[default]
    Auto,
    /// Motion JPEG (compressed; high resolutions at full frame rate over USB 2).
    Mjpeg,
    /// YUYV 4:2:2 (uncompressed).
    Yuyv,
}

fn default_width() -> u32 {
    640
}

fn default_height() -> u32 {
    480
}

fn default_buffers() -> u32 {
    4
}

impl SensorKind for CameraConfig {
    const TYPE: &'static str = "camera";
}

impl SensorFacts for CameraConfig {
    // A camera keeps only the latest frame.
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Image)
    }

    fn default_queue(&self) -> QueueConfig {
        live_queue(1)
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self.device.trim().is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.device"),
                "must be a device path such as /dev/video0 or a card name",
            ));
        }
        for (key, value) in [("width", self.width), ("height", self.height)] {
            if !(16..=8192).contains(&value) {
                errors.push(ConfigError::new(
                    format!("{path}.{key}"),
                    "must be 16-8192 pixels",
                ));
            }
        }
        if let Some(fps) = self.fps {
            if !(1..=240).contains(&fps) {
                errors.push(ConfigError::new(format!("{path}.fps"), "must be 1-240"));
            }
        }
        if !(2..=32).contains(&self.buffers) {
            errors.push(ConfigError::new(format!("{path}.buffers"), "must be 2-32"));
        }
    }
}
