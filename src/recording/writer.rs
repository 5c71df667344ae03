//! Writes a recording, one frame at a time.

use super::{payload, Header, RecordingError, MAGIC};
use crate::frame::Frame;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// An open recording being written.
pub struct RecordingWriter {
    path: PathBuf,
    file: BufWriter<File>,
    kind: crate::frame::FrameKind,
    first_at: Option<SystemTime>,
    frames: u64,
    bytes: u64,
    body: Vec<u8>,
}

impl RecordingWriter {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path, header: &Header) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = BufWriter::new(File::create(path).map_err(io)?);
        // Serializing plain strings cannot fail.
        let json = serde_json::to_vec(header).unwrap_or_default();
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&(json.len() as u32).to_le_bytes())
            .map_err(io)?;
        file.write_all(&json).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            kind: header.kind,
            first_at: None,
            frames: 0,
            bytes: (MAGIC.len() + 4 + json.len()) as u64,
            body: Vec::new(),
        })
    }

    /// Appends one frame, timed relative to the first.
    pub fn write(&mut self, frame: &Frame) -> Result<(), RecordingError> {
        let frame_err = |message: String| RecordingError::Frame {
            path: self.path.clone(),
            index: self.frames,
            message,
        };
        if frame.payload.kind() != self.kind {
            return Err(frame_err(format!(
                "{} frame in a recording of {} frames",
                frame.payload.kind(),
                self.kind
            )));
        }
        let first = *self.first_at.get_or_insert(frame.captured_at);
        let offset = frame
            .captured_at
            .duration_since(first)
            .unwrap_or(Duration::ZERO);
        self.body.clear();
        self.body
            .extend_from_slice(&(offset.as_micros() as u64).to_le_bytes());
        payload::encode(&frame.payload, &mut self.body).map_err(frame_err)?;
        let io = |source| RecordingError::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .write_all(&(self.body.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.file
            .write_all(&crc32fast::hash(&self.body).to_le_bytes())
            .map_err(io)?;
        self.file.write_all(&self.body).map_err(io)?;
        self.frames += 1;
        self.bytes += 8 + self.body.len() as u64;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes everything to disk.
    pub fn finish(mut self) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.flush().map_err(io)?;
        self.file.get_ref().sync_all().map_err(io)
    }
}
