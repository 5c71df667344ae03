//! Recordings: a sensor's frames with their timing, written by `edgeinfer record` and replayed by
//! the `recording` sensor type.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! "EIREC\0\0\x01"                      magic, format version 1
//! u32 header_len, header (JSON)        sensor id, frame kind, source type, start time, writer
//! repeated:
//!   u32 body_len, u32 crc32(body), body
//!   body = u64 offset_us (since the first frame) | u8 kind | payload
//!     image:  u32 width, u32 height, PNG (lossless)
//!     audio:  u32 sample_rate, f32 samples
//!     record: f64 values
//! ```
//!
//! Every frame is checksummed, so a damaged one is skipped and counted, and a recording cut short
//! (power loss, full disk) replays up to its last complete frame.

mod payload;
mod reader;
mod writer;

pub use reader::RecordingReader;
pub use writer::RecordingWriter;

use crate::frame::FrameKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// First bytes of every recording.
const MAGIC: &[u8; 8] = b"EIREC\0\0\x01";
/// Largest header or frame accepted when reading (a larger length means a damaged file).
const MAX_CHUNK: u32 = 256 * 1024 * 1024;

/// What a recording holds, stored once at its start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Id of the recorded sensor.
    pub sensor: String,
    /// Kind of every frame.
    #[serde(with = "kind_name")]
    pub kind: FrameKind,
    /// The sensor's `type` in the config it was recorded with.
    pub source: String,
    /// When recording started (RFC 3339).
    pub started_at: String,
    /// Program and version that wrote the file.
    pub writer: String,
}

/// Why a recording cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a recording, or its header is damaged.
    #[error("{}: not an edgeinfer recording: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// One frame is damaged; the next ones may still be read.
    #[error("{}: frame {index}: {message}", path.display())]
    Frame {
        path: PathBuf,
        index: u64,
        message: String,
    },
}

/// Reads only the header of a recording (for config validation and `check-config`).
pub fn read_header(path: &Path) -> Result<Header, RecordingError> {
    RecordingReader::open(path).map(|r| r.header().clone())
}

mod kind_name {
    use crate::frame::FrameKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &FrameKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&kind.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FrameKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "image" => Ok(FrameKind::Image),
            "audio" => Ok(FrameKind::Audio),
            "record" => Ok(FrameKind::Record),
            other => Err(serde::de::Error::custom(format!(
                "unknown frame kind \"{other}\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
