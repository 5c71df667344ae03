//! File-backed sources for demos, tests and trying models on recorded data.

mod images;
mod lines;
mod mjpeg;
mod wav;

pub use images::ImageReplay;
pub use lines::{parse_record, LineReplay};
pub use mjpeg::split_jpeg_frames;
pub use wav::WavReplay;
