//! File-backed sources for demos, tests and trying models on recorded data.

mod images;
mod lines;
mod mjpeg;
mod wav;

pub use images::ImageReplay;
pub use lines::{parse_record, LineReplay};
#[cfg(test)]
pub(crate) use mjpeg::solid_jpeg;
pub use mjpeg::{find_soi, frame_at, split_jpeg_frames, FrameAt};
pub use wav::WavReplay;
