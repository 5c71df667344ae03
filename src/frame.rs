//! The unit of data that flows from a sensor to an inference worker.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// One capture from one sensor.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Id of the sensor that produced it.
    pub sensor: Arc<str>,
    /// Per-sensor sequence number, from 0 at every start of the sensor.
    pub seq: u64,
    /// Wall-clock time of capture (for replays: when the frame was read).
    pub captured_at: SystemTime,
    /// The data.
    pub payload: Payload,
}

/// What a frame carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An 8-bit RGB image.
    Image(image::RgbImage),
    /// A window of mono samples in [-1, 1].
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// The window.
        samples: Vec<f32>,
    },
    /// The numeric fields of one record (a serial line, a CSV row).
    Record(Vec<f64>),
}

/// The three kinds of payload, for matching sensors to models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `Payload::Image`.
    Image,
    /// `Payload::Audio`.
    Audio,
    /// `Payload::Record`.
    Record,
}

impl Payload {
    /// The kind of this payload.
    pub fn kind(&self) -> FrameKind {
        match self {
            Payload::Image(_) => FrameKind::Image,
            Payload::Audio { .. } => FrameKind::Audio,
            Payload::Record(_) => FrameKind::Record,
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Image => "image",
            FrameKind::Audio => "audio",
            FrameKind::Record => "record",
        })
    }
}
