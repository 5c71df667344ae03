//! `camera` sensors: V4L2 capture devices.

use super::{FrameSource, Next, SensorError};
use crate::config::CameraConfig;

/// A V4L2 camera, opened by the capture loop and reopened when it goes away.
pub struct CameraSource {
    config: CameraConfig,
}

impl CameraSource {
    /// A camera source; the device is opened by `connect`.
    pub fn new(config: CameraConfig) -> Self {
        Self { config }
    }
}

impl FrameSource for CameraSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        Err(SensorError::Lost(format!(
            "{}: camera support is not built yet",
            self.config.device
        )))
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        Err(SensorError::Lost("not connected".into()))
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }
}
