//! Reads a recording frame by frame.

use super::{payload, Header, RecordingError, MAGIC, MAX_CHUNK};
use crate::frame::Payload;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An open recording.
pub struct RecordingReader {
    path: PathBuf,
    file: BufReader<File>,
    header: Header,
    data_start: u64,
    index: u64,
    truncated: bool,
}

impl RecordingReader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = |message: String| RecordingError::Format {
            path: path.to_path_buf(),
            message,
        };
        let mut file = BufReader::new(File::open(path).map_err(io)?);
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic)
            .map_err(|_| format("file too short".into()))?;
        if magic[..7] != MAGIC[..7] {
            return Err(format("wrong magic bytes".into()));
        }
        if magic[7] != MAGIC[7] {
            return Err(format(format!(
                "format version {} (this build reads version {})",
                magic[7], MAGIC[7]
            )));
        }
        let len = read_u32(&mut file).map_err(|_| format("header cut short".into()))?;
        if len > MAX_CHUNK {
            return Err(format(format!("header length {len} is implausible")));
        }
        let mut json = vec![0u8; len as usize];
        file.read_exact(&mut json)
            .map_err(|_| format("header cut short".into()))?;
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| format(format!("bad header: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            header,
            data_start: 12 + len as u64,
            index: 0,
            truncated: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// True once the end was reached in the middle of a frame (a recording cut short).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next frame and its offset from the first; `Ok(None)` at the end. A damaged frame is an
    /// error after which reading can go on; a damaged length ends the recording.
    pub fn next_frame(&mut self) -> Result<Option<(Duration, Payload)>, RecordingError> {
        let index = self.index;
        let frame_err = |message: String| RecordingError::Frame {
            path: self.path.clone(),
            index,
            message,
        };
        let len = match read_u32(&mut self.file) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                // Either the clean end or a few bytes of a length: both end the recording.
                return Ok(None);
            }
            Err(source) => {
                return Err(RecordingError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if !(9..=MAX_CHUNK).contains(&len) {
            self.truncated = true;
            return Err(RecordingError::Format {
                path: self.path.clone(),
                message: format!("frame {index}: length {len} is implausible; reading stops here"),
            });
        }
        let mut crc = [0u8; 4];
        let mut body = vec![0u8; len as usize];
        if self.file.read_exact(&mut crc).is_err() || self.file.read_exact(&mut body).is_err() {
            self.truncated = true;
            return Ok(None);
        }
        self.index += 1;
        if crc32fast::hash(&body) != u32::from_le_bytes(crc) {
            return Err(frame_err("checksum mismatch; frame skipped".into()));
        }
        let (offset, rest) = body.split_at(8);
        let offset =
            Duration::from_micros(u64::from_le_bytes(offset.try_into().unwrap_or_default()));
        let payload = payload::decode(rest, self.header.kind).map_err(frame_err)?;
        Ok(Some((offset, payload)))
    }

    /// Goes back to the first frame.
    pub fn rewind(&mut self) -> Result<(), RecordingError> {
        self.file
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.index = 0;
        self.truncated = false;
        Ok(())
    }
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}
