//! `type = "serial"`: records read from a serial port (RS-232/485 adapters, microcontrollers).

use super::kind::{live_queue, SensorFacts, SensorKind};
use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;
use std::path::PathBuf;

/// A serial port and how records are framed on it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path, e.g. `/dev/ttyUSB0` or a stable `/dev/serial/by-id/...` link.
    pub port: PathBuf,
    /// Bits per second.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Data bits per character: 5-8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Parity bit.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits: 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Flow control.
    #[serde(default)]
    pub flow_control: FlowControl,
    /// A read waits at most this long for bytes before the sensor checks for shutdown again.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// How records are delimited on the wire.
    pub framing: SerialFraming,
}

/// Parity bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    /// None.
    #[default]
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// Record framing on the wire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SerialFraming {
    /// One record of delimited numbers per line.
    Csv {
        /// Field separator.
        #[serde(default = "super::comma")]
        delimiter: char,
        /// Longest line accepted, in bytes; longer lines are skipped and counted.
        #[serde(default = "default_max_line")]
        max_line: usize,
    },
    /// One JSON object per line; the named fields, in this order, form the record.
    Json {
        /// Keys of the numeric fields to keep (dots reach into nested objects: `imu.ax`).
        fields: Vec<String>,
        /// Longest line accepted, in bytes; longer lines are skipped and counted.
        #[serde(default = "default_max_line")]
        max_line: usize,
    },
    /// Binary records: a length prefix (the payload's size in bytes) and then `values`
    /// little-endian numbers. A prefix that does not match is skipped one byte at a time until
    /// the stream is in step again; the skipped bytes are counted.
    Binary {
        /// Type of each value.
        sample: SampleType,
        /// Values per record.
        values: usize,
        /// Width of the length prefix.
        #[serde(default)]
        length_prefix: LengthPrefix,
    },
}

/// Type of the values of a binary record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleType {
    /// 32-bit IEEE float, little-endian.
    F32,
    /// 16-bit signed integer, little-endian (delivered as its integer value).
    I16,
}

impl SampleType {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            SampleType::F32 => 4,
            SampleType::I16 => 2,
        }
    }
}

/// Width of a binary record's length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthPrefix {
    /// One byte (payloads up to 255 bytes).
    #[default]
    U8,
    /// Two bytes, little-endian.
    U16,
}

fn default_baud() -> u32 {
    115_200
}

fn default_data_bits() -> u8 {
    8
}

fn default_stop_bits() -> u8 {
    1
}

fn default_read_timeout_ms() -> u64 {
    500
}

fn default_max_line() -> usize {
    1024
}

impl SensorKind for SerialConfig {
    const TYPE: &'static str = "serial";
}

impl SensorFacts for SerialConfig {
    // Serial keeps a backlog of records and drops the oldest.
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Record)
    }

    fn default_queue(&self) -> QueueConfig {
        live_queue(256)
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.port]
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self.port.as_os_str().is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.port"),
                "must not be empty",
            ));
        }
        if !(50..=4_000_000).contains(&self.baud) {
            errors.push(ConfigError::new(
                format!("{path}.baud"),
                "must be 50-4000000",
            ));
        }
        if !(5..=8).contains(&self.data_bits) {
            errors.push(ConfigError::new(format!("{path}.data_bits"), "must be 5-8"));
        }
        if !(1..=2).contains(&self.stop_bits) {
            errors.push(ConfigError::new(
                format!("{path}.stop_bits"),
                "must be 1 or 2",
            ));
        }
        if !(10..=60_000).contains(&self.read_timeout_ms) {
            errors.push(ConfigError::new(
                format!("{path}.read_timeout_ms"),
                "must be 10-60000",
            ));
        }
        let framing = format!("{path}.framing");
        match &self.framing {
            SerialFraming::Csv {
                delimiter,
                max_line,
            } => {
                if *delimiter == '\n' || *delimiter == '\r' {
                    errors.push(ConfigError::new(
                        format!("{framing}.delimiter"),
                        "must not be a line break",
                    ));
                }
                check_max_line(*max_line, &framing, errors);
            }
            SerialFraming::Json { fields, max_line } => {
                if fields.is_empty() || fields.iter().any(|f| f.trim().is_empty()) {
                    errors.push(ConfigError::new(
                        format!("{framing}.fields"),
                        "must name at least one field, none empty",
                    ));
                }
                check_max_line(*max_line, &framing, errors);
            }
            SerialFraming::Binary {
                sample,
                values,
                length_prefix,
            } => {
                let max = match length_prefix {
                    LengthPrefix::U8 => u8::MAX as usize,
                    LengthPrefix::U16 => u16::MAX as usize,
                } / sample.size();
                if *values == 0 || *values > max {
                    errors.push(ConfigError::new(
                        format!("{framing}.values"),
                        format!("must be 1-{max} for this sample type and length prefix"),
                    ));
                }
            }
        }
    }
}

fn check_max_line(max_line: usize, framing: &str, errors: &mut Vec<ConfigError>) {
    if !(16..=1_048_576).contains(&max_line) {
        errors.push(ConfigError::new(
            format!("{framing}.max_line"),
            "must be 16-1048576 bytes",
        ));
    }
}
