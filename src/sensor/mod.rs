//! Sensors: sources of frames. Each runs on its own OS thread (file and device reads block) and hands
//! frames to its model's queue through a `SensorPort`.

pub mod audio;
pub mod camera;
mod capture;
pub mod command;
pub mod recording;
pub mod replay;
mod running;
pub mod serial;
mod window;

pub use capture::{run_capture, CaptureSettings, Pacing};
pub use running::{RestartError, Sensors};
pub use window::Windower;

use crate::config::SourceConfig;
use crate::frame::Payload;
use std::path::PathBuf;
use std::time::Duration;

/// Why a sensor could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The source cannot be used at all (missing file, unreadable folder, bad format).
    #[error("{}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// One item was bad (a corrupt image, an unparsable line): skipped and counted.
    #[error("{0}")]
    Item(String),
    /// A device is missing or went away (unplugged, hung up, USB reset): the capture loop
    /// reconnects with backoff; the rest of the daemon carries on.
    #[error("{0}")]
    Lost(String),
}

/// What a source produced.
#[derive(Debug)]
pub enum Next {
    /// A payload; `offset` is its time since the start of the stream for sources that carry their
    /// own timing (recordings), used by `Pacing::Recorded`.
    Frame {
        payload: Payload,
        offset: Option<Duration>,
    },
    /// Nothing arrived within the source's read timeout (live sources); ask again.
    Idle,
    /// A finite source is exhausted.
    End,
}

impl Next {
    /// A frame without timing of its own.
    pub fn frame(payload: Payload) -> Self {
        Next::Frame {
            payload,
            offset: None,
        }
    }
}

/// Something that yields payloads one at a time.
pub trait FrameSource: Send {
    /// Opens the device, or reopens it after `SensorError::Lost`. Files are opened when the
    /// source is built, so their sources keep this default.
    fn connect(&mut self) -> Result<(), SensorError> {
        Ok(())
    }
    /// The next payload. Live sources return `Next::Idle` after their read timeout so that the
    /// capture loop can notice shutdown.
    fn next_payload(&mut self) -> Result<Next, SensorError>;
    /// Starts again from the beginning (for `loop = true`).
    fn rewind(&mut self) -> Result<(), SensorError>;
    /// Data lost inside the source since the last call, before it became a frame (audio samples
    /// the callback could not buffer, serial bytes skipped to get back in step).
    fn take_overruns(&mut self) -> u64 {
        0
    }
}

/// Opens the source a sensor config describes, with its pacing and looping settings: one line per
/// sensor kind (the other place a new kind is registered, besides `config::sensors`). File sources
/// are opened here, so a bad file fails start-up; devices are opened by the capture loop, which
/// retries them, so a camera plugged in later is picked up.
pub fn open(source: &SourceConfig) -> Result<(Box<dyn FrameSource>, CaptureSettings), SensorError> {
    let opened: Box<dyn FrameSource> = match source {
        SourceConfig::ImageReplay(c) => Box::new(replay::ImageReplay::open(&c.path)?),
        SourceConfig::WavReplay(c) => Box::new(replay::WavReplay::open(&c.path, c.window, c.hop)?),
        SourceConfig::LineReplay(c) => {
            Box::new(replay::LineReplay::open(&c.path, c.header, c.delimiter)?)
        }
        SourceConfig::Camera(c) => Box::new(camera::CameraSource::new(c.clone())),
        SourceConfig::Command(c) => Box::new(command::CommandSource::new(c.clone())),
        SourceConfig::Audio(c) => Box::new(audio::AudioSource::new(c.clone())),
        SourceConfig::Serial(c) => Box::new(serial::SerialSource::new(c.clone())),
        SourceConfig::Recording(c) => Box::new(recording::RecordingSource::open(&c.path)?),
    };
    let facts = source.facts();
    let pacing = if facts.paced_by_timestamps() {
        Pacing::Recorded
    } else {
        facts.rate().map_or(Pacing::Free, Pacing::Rate)
    };
    let settings = CaptureSettings {
        pacing,
        looping: facts.looping(),
    };
    Ok((opened, settings))
}
