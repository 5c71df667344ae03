//! Sensors: sources of frames. Each runs on its own OS thread (file and device reads block) and hands
//! frames to its model's queue through a `SensorPort`.

mod capture;
pub mod replay;

pub use capture::{run_capture, CaptureSettings};

use crate::config::SourceConfig;
use crate::frame::Payload;
use std::path::PathBuf;

/// Why a sensor could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The source cannot be used at all (missing file, unreadable folder, bad format).
    #[error("{}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// One item was bad (a corrupt image, an unparsable line): skipped and counted.
    #[error("{0}")]
    Item(String),
}

/// Something that yields payloads one at a time.
pub trait FrameSource: Send {
    /// The next payload; `Ok(None)` at the end of a finite source.
    fn next_payload(&mut self) -> Result<Option<Payload>, SensorError>;
    /// Starts again from the beginning (for `loop = true`).
    fn rewind(&mut self) -> Result<(), SensorError>;
}

/// Opens the source a sensor config describes, with its pacing and looping settings.
pub fn open(source: &SourceConfig) -> Result<(Box<dyn FrameSource>, CaptureSettings), SensorError> {
    let opened: Box<dyn FrameSource> = match source {
        SourceConfig::ImageReplay(c) => Box::new(replay::ImageReplay::open(&c.path)?),
        SourceConfig::WavReplay(c) => Box::new(replay::WavReplay::open(&c.path, c.window, c.hop)?),
        SourceConfig::LineReplay(c) => {
            Box::new(replay::LineReplay::open(&c.path, c.header, c.delimiter)?)
        }
    };
    let settings = CaptureSettings {
        rate: source.rate(),
        looping: source.looping(),
    };
    Ok((opened, settings))
}
