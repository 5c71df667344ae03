//! Splitting an MJPEG stream (concatenated JPEG images) into frames: a whole file at once here, and
//! piece by piece by the `command` source's splitter, through the same [`find_soi`] and
//! [`frame_at`].
//!
//! Walks the JPEG marker segments instead of searching for the next end-of-image marker, so an EXIF
//! thumbnail (a whole JPEG inside an APP1 segment) does not end the frame early.

use crate::jpeg;
use std::ops::Range;

/// Byte ranges of the complete JPEG images in `data`, in order. Bytes between images and a truncated
/// final image are ignored.
pub fn split_jpeg_frames(data: &[u8]) -> Vec<Range<usize>> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_soi(data, pos) {
        match frame_at(data, start) {
            FrameAt::Complete(end) => {
                frames.push(start..end);
                pos = end;
            }
            FrameAt::Truncated | FrameAt::Broken => pos = start + 2,
        }
    }
    frames
}

/// What the bytes from a start-of-image marker hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAt {
    /// A whole JPEG image, ending (exclusive) here.
    Complete(usize),
    /// The start of one: the data ends before the image does.
    Truncated,
    /// Not a JPEG marker structure, or a new image starts before this one ends.
    Broken,
}

/// The first start-of-image marker (followed by the `FF` of the next marker) at or after `from`.
pub fn find_soi(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0xFF, jpeg::SOI, 0xFF])
        .map(|p| p + from)
}

/// Walks the JPEG whose start-of-image marker is at `start` to its end-of-image marker.
pub fn frame_at(data: &[u8], start: usize) -> FrameAt {
    for segment in jpeg::segments(data, start) {
        match segment {
            Ok(s) if s.marker == jpeg::EOI => return FrameAt::Complete(s.end),
            // A new image before this one ended.
            Ok(s) if s.marker == jpeg::SOI => return FrameAt::Broken,
            Ok(_) => {}
            Err(jpeg::SegmentError::Truncated(_)) => return FrameAt::Truncated,
            Err(jpeg::SegmentError::Malformed(_)) => return FrameAt::Broken,
        }
    }
    FrameAt::Truncated
}

/// A `size`×`size` JPEG of one colour, for the tests of the MJPEG splitters.
#[cfg(test)]
pub(crate) fn solid_jpeg(colour: [u8; 3], size: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(size, size, image::Rgb(colour));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(colour: [u8; 3]) -> Vec<u8> {
        solid_jpeg(colour, 8)
    }

    #[test]
    fn splits_concatenated_jpegs_and_ignores_junk_and_a_truncated_tail() {
        let (a, b) = (jpeg([255, 0, 0]), jpeg([0, 0, 255]));
        let mut stream = b"junk".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a[..a.len() / 2]);
        let frames = split_jpeg_frames(&stream);
        assert_eq!(frames.len(), 2);
        assert_eq!(&stream[frames[0].clone()], &a[..]);
        assert_eq!(&stream[frames[1].clone()], &b[..]);
    }

    #[test]
    fn an_embedded_thumbnail_does_not_end_the_frame() {
        let outer = jpeg([0, 255, 0]);
        let thumb = jpeg([255, 255, 255]);
        // Insert an APP1 segment holding a whole JPEG right after SOI.
        let mut with_thumb = outer[..2].to_vec();
        with_thumb.extend_from_slice(&[0xFF, 0xE1]);
        with_thumb.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        with_thumb.extend_from_slice(&thumb);
        with_thumb.extend_from_slice(&outer[2..]);
        let frames = split_jpeg_frames(&with_thumb);
        assert_eq!(frames, vec![0..with_thumb.len()]);
        assert!(image::load_from_memory(&with_thumb).is_ok());
    }
}
