//! `serial` sensors: records read from a serial port, framed as CSV lines, JSON lines or
//! length-prefixed binary records.
//!
//! The port is opened by the capture loop and reopened with backoff after a hang-up or an I/O
//! error, so a USB adapter pulled out and plugged back in resumes without a restart. Bad bytes
//! never stop the sensor: each skipped record is reported as a bad item and counted.

mod framing;

pub use framing::{Framed, Framer};

use super::{FrameSource, Next, SensorError};
use crate::config::{self, SerialConfig};
use crate::frame::Payload;
use serialport::SerialPort;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::time::Duration;

/// Bytes read from the port at most per call.
const READ_CHUNK: usize = 4096;

/// A serial port and its framer.
pub struct SerialSource {
    config: SerialConfig,
    port: Option<Box<dyn SerialPort>>,
    framer: Framer,
    /// Records framed but not yet handed out (at most one read's worth).
    pending: VecDeque<Framed>,
    buf: Box<[u8; READ_CHUNK]>,
}

impl SerialSource {
    /// A serial source; the port is opened by `connect`.
    pub fn new(config: SerialConfig) -> Self {
        let framer = Framer::new(&config.framing);
        Self {
            config,
            port: None,
            framer,
            pending: VecDeque::new(),
            buf: Box::new([0; READ_CHUNK]),
        }
    }

    fn lost(&mut self, message: String) -> SensorError {
        self.port = None;
        self.framer.reset();
        SensorError::Lost(format!("{}: {message}", self.config.port.display()))
    }
}

impl FrameSource for SerialSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        let c = &self.config;
        let path = c.port.to_string_lossy().into_owned();
        let port = serialport::new(path, c.baud)
            .data_bits(match c.data_bits {
                5 => serialport::DataBits::Five,
                6 => serialport::DataBits::Six,
                7 => serialport::DataBits::Seven,
                _ => serialport::DataBits::Eight,
            })
            .parity(match c.parity {
                config::Parity::None => serialport::Parity::None,
                config::Parity::Odd => serialport::Parity::Odd,
                config::Parity::Even => serialport::Parity::Even,
            })
            .stop_bits(match c.stop_bits {
                2 => serialport::StopBits::Two,
                _ => serialport::StopBits::One,
            })
            .flow_control(match c.flow_control {
                config::FlowControl::None => serialport::FlowControl::None,
                config::FlowControl::Software => serialport::FlowControl::Software,
                config::FlowControl::Hardware => serialport::FlowControl::Hardware,
            })
            .timeout(Duration::from_millis(c.read_timeout_ms))
            .open()
            .map_err(|e| {
                SensorError::Lost(format!("{}: cannot open: {e}", self.config.port.display()))
            })?;
        self.framer.reset();
        self.pending.clear();
        self.port = Some(port);
        Ok(())
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        loop {
            match self.pending.pop_front() {
                Some(Ok(values)) => return Ok(Next::frame(Payload::Record(values))),
                Some(Err(e)) => return Err(SensorError::Item(e)),
                None => {}
            }
            let Some(port) = self.port.as_mut() else {
                return Err(self.lost("not open".into()));
            };
            match port.read(&mut self.buf[..]) {
                // A tty read of nothing without a timeout means the other end hung up.
                Ok(0) => return Err(self.lost("hung up".into())),
                Ok(n) => self.framer.feed(&self.buf[..n], &mut self.pending),
                Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                    return Ok(Next::Idle)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.lost(format!("read failed: {e}"))),
            }
        }
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }

    fn take_overruns(&mut self) -> u64 {
        self.framer.take_overruns()
    }
}
