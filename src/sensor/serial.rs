//! `serial` sensors: records from a serial port.

use super::{FrameSource, Next, SensorError};
use crate::config::SerialConfig;

/// A serial port, opened by the capture loop and reopened when it goes away.
pub struct SerialSource {
    config: SerialConfig,
}

impl SerialSource {
    /// A serial source; the device is opened by `connect`.
    pub fn new(config: SerialConfig) -> Self {
        Self { config }
    }
}

impl FrameSource for SerialSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        Err(SensorError::Lost(format!(
            "{}: serial support is not built yet",
            self.config.port.display()
        )))
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        Err(SensorError::Lost("not connected".into()))
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }
}
