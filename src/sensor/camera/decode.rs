//! Frame decoding for cameras: the error both decoders report, and MJPEG to RGB (YUYV is in
//! `yuyv.rs`).
//!
//! These are pure functions on byte slices, shared by the camera and by MJPEG file replay.

use crate::jpeg::{self, SegmentError, DHT, EOI, SOI, SOS};
use image::RgbImage;
use std::borrow::Cow;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame does not start with a JPEG start-of-image marker.
    #[error("not a JPEG frame (no start-of-image marker)")]
    NotJpeg,
    /// The frame ends before the image does (a frame cut short on the bus).
    #[error("truncated JPEG frame: {0}")]
    Truncated(&'static str),
    /// The JPEG marker structure is broken.
    #[error("malformed JPEG frame: {0}")]
    Malformed(&'static str),
    /// The JPEG decoder rejected the frame.
    #[error("JPEG decoding failed: {0}")]
    Jpeg(#[from] image::ImageError),
    /// A zero width or height, or a line pitch too small for the width.
    #[error("bad YUYV geometry: {width}x{height} with {bytes_per_line} bytes per line")]
    Geometry {
        width: u32,
        height: u32,
        bytes_per_line: u32,
    },
    /// Fewer bytes than the geometry needs.
    #[error("short YUYV frame: {got} bytes, {needed} needed")]
    Short { got: usize, needed: usize },
}

/// The Huffman tables of ITU-T T.81 Annex K.3 (K.3.3.1 and K.3.3.2) as one DHT segment: the tables
/// MJPEG streams (UVC cameras, AVI "MJPG") leave out and expect the decoder to assume.
#[rustfmt::skip]
const STANDARD_DHT: [u8; 420] = [
    0xFF, DHT, 0x01, 0xA2,
    // DC luminance (class 0, id 0): Table K.3.
    0x00,
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // DC chrominance (class 0, id 1): Table K.4.
    0x01,
    0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // AC luminance (class 1, id 0): Table K.5.
    0x10,
    0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7D,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
    // AC chrominance (class 1, id 1): Table K.6.
    0x11,
    0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

impl From<SegmentError> for DecodeError {
    fn from(e: SegmentError) -> Self {
        match e {
            SegmentError::Truncated(what) => DecodeError::Truncated(what),
            SegmentError::Malformed(what) => DecodeError::Malformed(what),
        }
    }
}

/// Decodes one MJPEG frame to RGB.
///
/// Frames without Huffman tables (no DHT segment before the scan, as most UVC cameras send them)
/// get the standard tables of JPEG Annex K.3 inserted first. Frames that are cut short (no
/// end-of-image marker after the scan) or whose marker structure is broken are rejected.
pub fn decode_mjpeg(frame: &[u8]) -> Result<RgbImage, DecodeError> {
    let complete = with_huffman_tables(frame)?;
    let decoded = image::load_from_memory_with_format(complete.as_ref(), image::ImageFormat::Jpeg)?;
    Ok(decoded.into_rgb8())
}

/// The frame unchanged when it carries Huffman tables before its first scan, otherwise a copy with
/// the standard tables inserted just before that scan. Checks the marker structure on the way.
pub fn with_huffman_tables(frame: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    let layout = scan_layout(frame)?;
    if layout.has_dht {
        return Ok(Cow::Borrowed(frame));
    }
    let mut out = Vec::with_capacity(frame.len() + STANDARD_DHT.len());
    out.extend_from_slice(&frame[..layout.sos]);
    out.extend_from_slice(&STANDARD_DHT);
    out.extend_from_slice(&frame[layout.sos..]);
    Ok(Cow::Owned(out))
}

/// Where the first scan starts, and whether Huffman tables come before it.
struct Layout {
    sos: usize,
    has_dht: bool,
}

/// Walks the marker segments from SOI to the first SOS and checks that an EOI follows the scan.
fn scan_layout(frame: &[u8]) -> Result<Layout, DecodeError> {
    if !jpeg::starts_with_soi(frame) {
        return Err(DecodeError::NotJpeg);
    }
    let mut has_dht = false;
    for segment in jpeg::segments(frame, 0) {
        let segment = segment?;
        match segment.marker {
            SOS => {
                if !has_end_marker(&frame[segment.end..]) {
                    return Err(DecodeError::Truncated(
                        "no end-of-image marker after the scan",
                    ));
                }
                return Ok(Layout {
                    sos: segment.start,
                    has_dht,
                });
            }
            EOI => return Err(DecodeError::Malformed("end of image before any scan")),
            SOI => return Err(DecodeError::Malformed("unexpected marker before the scan")),
            marker => has_dht |= marker == DHT,
        }
    }
    // The walk ends at an error or at the end-of-image marker, both answered above.
    Err(DecodeError::Truncated("ends before the image data"))
}

/// True when an EOI marker occurs in `data`. Entropy-coded data stuffs every 0xFF data byte with a
/// 0x00, so 0xFF 0xD9 there can only be the marker itself.
fn has_end_marker(data: &[u8]) -> bool {
    data.windows(2).any(|w| w[0] == 0xFF && w[1] == EOI)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ExtendedColorType, Rgb};

    /// A JPEG of a colour gradient, encoded by the `image` crate (which writes the standard
    /// Annex K tables in a DHT segment).
    fn gradient_jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode(img.as_raw(), width, height, ExtendedColorType::Rgb8)
            .expect("encode");
        out
    }

    /// The frame with every DHT segment removed.
    fn strip_dht(frame: &[u8]) -> Vec<u8> {
        let mut out = frame[..2].to_vec();
        for s in jpeg::segments(frame, 0).map(Result::unwrap) {
            if s.marker == SOS {
                out.extend_from_slice(&frame[s.start..]);
                return out;
            }
            if s.marker != DHT {
                out.extend_from_slice(&frame[s.start..s.end]);
            }
        }
        panic!("no scan");
    }

    fn count_dht(frame: &[u8]) -> usize {
        jpeg::segments(frame, 0)
            .filter(|s| matches!(s, Ok(s) if s.marker == DHT))
            .count()
    }

    #[test]
    fn standard_table_lengths_add_up() {
        // Segment length field covers everything after the marker.
        let len = usize::from(u16::from_be_bytes([STANDARD_DHT[2], STANDARD_DHT[3]]));
        assert_eq!(len, STANDARD_DHT.len() - 2);
        // Each table: class/id byte, 16 counts, then as many symbols as the counts add up to.
        let mut pos = 4;
        let mut tables = Vec::new();
        while pos < STANDARD_DHT.len() {
            let class_id = STANDARD_DHT[pos];
            let n: usize = STANDARD_DHT[pos + 1..pos + 17]
                .iter()
                .map(|&c| usize::from(c))
                .sum();
            tables.push((class_id, n));
            pos += 17 + n;
        }
        assert_eq!(pos, STANDARD_DHT.len());
        assert_eq!(
            tables,
            vec![(0x00, 12), (0x01, 12), (0x10, 162), (0x11, 162)]
        );
    }

    #[test]
    fn jpeg_with_tables_is_decoded_as_is() {
        let jpeg = gradient_jpeg(48, 32);
        assert!(count_dht(&jpeg) > 0);
        assert!(matches!(with_huffman_tables(&jpeg), Ok(Cow::Borrowed(_))));
        let img = decode_mjpeg(&jpeg).expect("decodes");
        assert_eq!(img.dimensions(), (48, 32));
    }

    #[test]
    fn jpeg_without_tables_gets_the_standard_ones() {
        let jpeg = gradient_jpeg(48, 32);
        let stripped = strip_dht(&jpeg);
        assert_eq!(count_dht(&stripped), 0);
        let fixed = with_huffman_tables(&stripped).expect("valid structure");
        assert!(matches!(fixed, Cow::Owned(_)));
        assert_eq!(count_dht(&fixed), 1);
        assert_eq!(fixed.len(), stripped.len() + STANDARD_DHT.len());
        assert_eq!(
            decode_mjpeg(&stripped).expect("decodes"),
            decode_mjpeg(&jpeg).expect("decodes")
        );
    }

    #[test]
    fn truncated_jpeg_is_rejected() {
        let jpeg = gradient_jpeg(64, 64);
        for cut in [1, 3, 20, jpeg.len() / 2, jpeg.len() - 2] {
            let err = decode_mjpeg(&jpeg[..cut]).expect_err("cut short");
            assert!(
                matches!(err, DecodeError::Truncated(_) | DecodeError::NotJpeg),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(decode_mjpeg(&[]), Err(DecodeError::NotJpeg)));
        assert!(matches!(
            decode_mjpeg(b"hello, world"),
            Err(DecodeError::NotJpeg)
        ));
        // A JPEG header followed by noise instead of segments.
        let mut noise = vec![0xFF, SOI];
        noise.extend((0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1));
        assert!(decode_mjpeg(&noise).is_err());
        // Valid structure, but the frame header claims a zero-sized image.
        let mut bad = gradient_jpeg(64, 64);
        let sof = bad
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        bad[sof + 5..sof + 9].fill(0);
        assert!(matches!(decode_mjpeg(&bad), Err(DecodeError::Jpeg(_))));
        // A segment length running past the end.
        assert!(matches!(
            decode_mjpeg(&[0xFF, SOI, 0xFF, 0xE0, 0x40, 0x00, 1, 2, 3]),
            Err(DecodeError::Truncated(_))
        ));
    }
}
