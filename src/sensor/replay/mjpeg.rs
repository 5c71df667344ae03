//! Splitting an MJPEG stream (concatenated JPEG images) into frames.
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
        match frame_end(data, start) {
            Some(end) => {
                frames.push(start..end);
                pos = end;
            }
            None => pos = start + 2,
        }
    }
    frames
}

fn find_soi(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0xFF, jpeg::SOI, 0xFF])
        .map(|p| p + from)
}

/// End (exclusive) of the JPEG starting at `start`, or `None` if it is malformed or truncated.
fn frame_end(data: &[u8], start: usize) -> Option<usize> {
    for segment in jpeg::segments(data, start) {
        match segment.ok()? {
            s if s.marker == jpeg::EOI => return Some(s.end),
            // A new image before this one ended.
            s if s.marker == jpeg::SOI => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(colour: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb(colour));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
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
