//! `recording` sensors: replay a file written by `edgeinfer record`, with its original timing.

use super::{FrameSource, Next, SensorError};
use crate::recording::{RecordingError, RecordingReader};
use std::path::{Path, PathBuf};
use tracing::warn;

/// Replays a recording.
pub struct RecordingSource {
    path: PathBuf,
    reader: RecordingReader,
}

impl RecordingSource {
    /// Opens the recording; fails on a file that is not one.
    pub fn open(path: &Path) -> Result<Self, SensorError> {
        let reader = RecordingReader::open(path).map_err(|e| SensorError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
        })
    }
}

impl FrameSource for RecordingSource {
    fn next_payload(&mut self) -> Result<Next, SensorError> {
        match self.reader.next_frame() {
            Ok(Some((offset, payload))) => Ok(Next::Frame {
                payload,
                offset: Some(offset),
            }),
            Ok(None) => {
                if self.reader.truncated() {
                    warn!("Recording ends in the middle of a frame (cut short while recording)");
                }
                Ok(Next::End)
            }
            Err(e @ RecordingError::Frame { .. }) => Err(SensorError::Item(e.to_string())),
            Err(RecordingError::Format { message, .. }) => {
                warn!(error = %message, "Recording damaged");
                Ok(Next::End)
            }
            Err(RecordingError::Io { path, source }) => Err(SensorError::Open {
                path,
                message: source.to_string(),
            }),
        }
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        self.reader.rewind().map_err(|e| SensorError::Open {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}
