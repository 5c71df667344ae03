//! Image replay: a folder of JPEG/PNG files in name order, or one MJPEG file.

use crate::frame::Payload;
use crate::sensor::camera::decode_mjpeg;
use crate::sensor::{FrameSource, Next, SensorError};
use std::path::{Path, PathBuf};

/// Replays images from a folder or an MJPEG file.
pub struct ImageReplay {
    items: Items,
    next: usize,
}

enum Items {
    Files(Vec<PathBuf>),
    Mjpeg {
        data: Vec<u8>,
        frames: Vec<std::ops::Range<usize>>,
    },
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

impl ImageReplay {
    /// Lists the folder or indexes the MJPEG file; fails if there is nothing to replay.
    pub fn open(path: &Path) -> Result<Self, SensorError> {
        let open_err = |message: String| SensorError::Open {
            path: path.to_path_buf(),
            message,
        };
        let items = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| open_err(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(open_err(
                    "no .jpg, .jpeg or .png files in this folder".into(),
                ));
            }
            Items::Files(files)
        } else {
            let data = std::fs::read(path).map_err(|e| open_err(e.to_string()))?;
            let frames = super::split_jpeg_frames(&data);
            if frames.is_empty() {
                return Err(open_err(
                    "no JPEG frames found (expected an MJPEG stream)".into(),
                ));
            }
            Items::Mjpeg { data, frames }
        };
        Ok(Self { items, next: 0 })
    }

    /// Number of images in one pass.
    pub fn len(&self) -> usize {
        match &self.items {
            Items::Files(f) => f.len(),
            Items::Mjpeg { frames, .. } => frames.len(),
        }
    }

    /// True when there is nothing to replay (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FrameSource for ImageReplay {
    fn next_payload(&mut self) -> Result<Next, SensorError> {
        let i = self.next;
        if i >= self.len() {
            return Ok(Next::End);
        }
        self.next += 1;
        let decoded = match &self.items {
            Items::Files(files) => std::fs::read(&files[i])
                .map_err(|e| e.to_string())
                .and_then(|b| image::load_from_memory(&b).map_err(|e| e.to_string()))
                .map_err(|e| SensorError::Item(format!("{}: {e}", files[i].display())))
                .map(|img| img.into_rgb8()),
            Items::Mjpeg { data, frames } => decode_mjpeg(&data[frames[i].clone()])
                .map_err(|e| SensorError::Item(format!("MJPEG frame {i}: {e}"))),
        }?;
        Ok(Next::frame(Payload::Image(decoded)))
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        self.next = 0;
        Ok(())
    }
}
