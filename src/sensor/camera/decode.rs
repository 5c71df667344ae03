//! Frame decoders for the pixel formats cameras deliver: MJPEG and YUYV 4:2:2, both to RGB.
//!
//! These are pure functions on byte slices, shared by the camera and by MJPEG file replay.

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

/// JPEG markers used below.
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

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
    if frame.len() < 2 || frame[0] != 0xFF || frame[1] != SOI {
        return Err(DecodeError::NotJpeg);
    }
    let mut pos = 2;
    let mut has_dht = false;
    loop {
        if pos >= frame.len() {
            return Err(DecodeError::Truncated("ends before the image data"));
        }
        if frame[pos] != 0xFF {
            return Err(DecodeError::Malformed("expected a marker between segments"));
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while pos < frame.len() && frame[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = frame.get(pos) else {
            return Err(DecodeError::Truncated("ends inside a marker"));
        };
        let start = pos - 1;
        pos += 1;
        match marker {
            SOS => {
                if !has_end_marker(&frame[pos..]) {
                    return Err(DecodeError::Truncated(
                        "no end-of-image marker after the scan",
                    ));
                }
                return Ok(Layout {
                    sos: start,
                    has_dht,
                });
            }
            EOI => return Err(DecodeError::Malformed("end of image before any scan")),
            // Markers without a length: TEM and RST0-7.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | SOI => return Err(DecodeError::Malformed("unexpected marker before the scan")),
            _ => {}
        }
        let Some(len) = frame.get(pos..pos + 2) else {
            return Err(DecodeError::Truncated("ends inside a segment header"));
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return Err(DecodeError::Malformed("segment length below 2"));
        }
        if pos + len > frame.len() {
            return Err(DecodeError::Truncated("ends inside a segment"));
        }
        has_dht |= marker == DHT;
        pos += len;
    }
}

/// True when an EOI marker occurs in `data`. Entropy-coded data stuffs every 0xFF data byte with a
/// 0x00, so 0xFF 0xD9 there can only be the marker itself.
fn has_end_marker(data: &[u8]) -> bool {
    data.windows(2).any(|w| w[0] == 0xFF && w[1] == EOI)
}

/// Fixed-point scale of the YUV to RGB coefficients below (16 fractional bits).
const SHIFT: u32 = 16;
const ROUND: i32 = 1 << (SHIFT - 1);
/// BT.601 limited range ("TV range": Y 16-235, Cb/Cr 16-240), scaled by 2^16:
/// 255/219 for luma, and the chroma weights of R, G and B.
const Y_GAIN: i32 = 76_309; // 1.164384
const V_TO_R: i32 = 104_597; // 1.596027
const U_TO_G: i32 = 25_675; // 0.391762
const V_TO_G: i32 = 53_279; // 0.812968
const U_TO_B: i32 = 132_201; // 2.017232

/// Converts one YUYV 4:2:2 frame (Y0 U Y1 V per pair of pixels) to RGB with BT.601 limited-range
/// coefficients, as ffmpeg's swscale does by default for `yuyv422` to `rgb24`. Each pair of
/// pixels shares its chroma sample.
///
/// `bytes_per_line` is the driver's line pitch (at least two bytes per pixel, rounded up to whole
/// pairs); rows may be padded beyond it. An odd width drops the last pair's second pixel.
pub fn decode_yuyv(
    frame: &[u8],
    width: u32,
    height: u32,
    bytes_per_line: u32,
) -> Result<RgbImage, DecodeError> {
    let geometry = DecodeError::Geometry {
        width,
        height,
        bytes_per_line,
    };
    let (w, h, pitch) = (width as usize, height as usize, bytes_per_line as usize);
    let row_bytes = w.div_ceil(2) * 4;
    if w == 0 || h == 0 || pitch < row_bytes {
        return Err(geometry);
    }
    let needed = (h - 1) * pitch + row_bytes;
    if frame.len() < needed {
        return Err(DecodeError::Short {
            got: frame.len(),
            needed,
        });
    }
    let mut rgb = vec![0u8; w * h * 3];
    for (src_row, dst_row) in frame.chunks(pitch).zip(rgb.chunks_exact_mut(w * 3)) {
        convert_row(&src_row[..row_bytes], dst_row);
    }
    RgbImage::from_raw(width, height, rgb).ok_or(geometry)
}

/// Converts one row: `src` holds whole YUYV pairs, `dst` is `3 * width` bytes (its last pixel
/// may be the first half of the last pair).
fn convert_row(src: &[u8], dst: &mut [u8]) {
    let mut pairs = dst.chunks_exact_mut(6);
    let mut quads = src.chunks_exact(4);
    for (out, q) in (&mut pairs).zip(&mut quads) {
        let (r, g, b) = chroma(q[1], q[3]);
        put(&mut out[..3], luma(q[0]), r, g, b);
        put(&mut out[3..], luma(q[2]), r, g, b);
    }
    let rest = pairs.into_remainder();
    if let (Some(q), false) = (quads.next(), rest.is_empty()) {
        let (r, g, b) = chroma(q[1], q[3]);
        put(rest, luma(q[0]), r, g, b);
    }
}

/// Scaled luma term of all three channels, with the rounding constant folded in.
#[inline(always)]
fn luma(y: u8) -> i32 {
    (i32::from(y) - 16) * Y_GAIN + ROUND
}

/// Scaled chroma terms of R, G and B.
#[inline(always)]
fn chroma(u: u8, v: u8) -> (i32, i32, i32) {
    let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
    (v * V_TO_R, -(u * U_TO_G + v * V_TO_G), u * U_TO_B)
}

#[inline(always)]
fn put(px: &mut [u8], y: i32, r: i32, g: i32, b: i32) {
    px[0] = clamp(y + r);
    px[1] = clamp(y + g);
    px[2] = clamp(y + b);
}

#[inline(always)]
fn clamp(v: i32) -> u8 {
    (v >> SHIFT).clamp(0, 255) as u8
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
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            let marker = jpeg[pos + 1];
            if marker == SOS {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if marker != DHT {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
    }

    fn count_dht(jpeg: &[u8]) -> usize {
        jpeg.windows(2).filter(|w| w == &[0xFF, DHT]).count()
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

    /// Packs per-pixel (Y, U, V) samples as YUYV, chroma taken from each pair's first pixel.
    fn pack(yuv: &[(u8, u8, u8)], width: usize, pitch: usize) -> Vec<u8> {
        let height = yuv.len() / width;
        let mut out = vec![0xEE; pitch * height];
        for row in 0..height {
            for x in (0..width).step_by(2) {
                let (y0, u, v) = yuv[row * width + x];
                let y1 = yuv.get(row * width + x + 1).filter(|_| x + 1 < width);
                let at = row * pitch + x * 2;
                out[at..at + 4].copy_from_slice(&[y0, u, y1.map_or(16, |p| p.0), v]);
            }
        }
        out
    }

    #[test]
    fn yuyv_reference_colours() {
        // Black, white, and 75% red, green and blue in BT.601 limited range.
        let cases: [((u8, u8, u8), [u8; 3]); 5] = [
            ((16, 128, 128), [0, 0, 0]),
            ((235, 128, 128), [255, 255, 255]),
            ((65, 100, 212), [191, 0, 0]),
            ((112, 72, 58), [0, 191, 0]),
            ((35, 212, 114), [0, 0, 191]),
        ];
        for ((y, u, v), want) in cases {
            let img = decode_yuyv(&[y, u, y, v], 2, 1, 4).expect("decodes");
            for px in img.pixels() {
                for c in 0..3 {
                    assert!(
                        (i32::from(px[c]) - i32::from(want[c])).abs() <= 2,
                        "YUV ({y},{u},{v}) gave {:?}, want about {want:?}",
                        px.0
                    );
                }
            }
        }
    }

    #[test]
    fn yuyv_fixed_point_matches_the_exact_formula() {
        for y in (0..=255u8).step_by(3) {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(5) {
                    let img = decode_yuyv(&[y, u, y, v], 2, 1, 4).expect("decodes");
                    let (c, d, e) = (
                        f64::from(y) - 16.0,
                        f64::from(u) - 128.0,
                        f64::from(v) - 128.0,
                    );
                    let want = [
                        1.164_384 * c + 1.596_027 * e,
                        1.164_384 * c - 0.391_762 * d - 0.812_968 * e,
                        1.164_384 * c + 2.017_232 * d,
                    ]
                    .map(|x| x.round().clamp(0.0, 255.0) as u8);
                    for (got, want) in img.get_pixel(0, 0).0.iter().zip(want) {
                        assert!(
                            got.abs_diff(want) <= 1,
                            "YUV ({y},{u},{v}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn yuyv_clamps_out_of_range_values() {
        // Luma above 235 and below 16 saturates; so does strong chroma.
        let img = decode_yuyv(&[255, 128, 0, 128], 2, 1, 4).expect("decodes");
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        let img = decode_yuyv(&[235, 255, 235, 128], 2, 1, 4).expect("decodes");
        assert_eq!(img.get_pixel(0, 0).0, [255, 205, 255]);
    }

    #[test]
    fn yuyv_stride_padding_is_skipped() {
        let (w, h) = (6, 3);
        let yuv: Vec<(u8, u8, u8)> = (0..w * h)
            .map(|i| {
                (
                    40 + i as u8 * 9,
                    90 + (i / 2) as u8 * 3,
                    160 - (i / 2) as u8 * 2,
                )
            })
            .collect();
        let tight =
            decode_yuyv(&pack(&yuv, w, w * 2), w as u32, h as u32, (w * 2) as u32).expect("tight");
        let padded = pack(&yuv, w, w * 2 + 20);
        let img = decode_yuyv(&padded, w as u32, h as u32, (w * 2 + 20) as u32).expect("padded");
        assert_eq!(img, tight);
        // The last row needs no padding after it.
        let trimmed = &padded[..padded.len() - 20];
        assert_eq!(
            decode_yuyv(trimmed, w as u32, h as u32, (w * 2 + 20) as u32).expect("trimmed"),
            tight
        );
    }

    #[test]
    fn yuyv_odd_width_uses_the_last_pair_half() {
        let (w, h) = (5, 2);
        let yuv: Vec<(u8, u8, u8)> = (0..w * h).map(|i| (30 + i as u8 * 20, 128, 128)).collect();
        let pitch = 12; // three pairs
        let img =
            decode_yuyv(&pack(&yuv, w, pitch), w as u32, h as u32, pitch as u32).expect("decodes");
        assert_eq!(img.dimensions(), (5, 2));
        for row in 0..h {
            for x in 0..w {
                let y = yuv[row * w + x].0;
                let grey = ((i32::from(y) - 16) * Y_GAIN + ROUND) >> SHIFT;
                assert_eq!(img.get_pixel(x as u32, row as u32).0, [grey as u8; 3]);
            }
        }
        // A pitch of only 2 * width bytes cannot hold the third pair.
        assert!(matches!(
            decode_yuyv(&[0; 40], 5, 2, 10),
            Err(DecodeError::Geometry { .. })
        ));
    }

    #[test]
    fn yuyv_short_buffer_is_an_error() {
        let err = decode_yuyv(&[16; 100], 8, 8, 16).expect_err("short");
        assert!(
            matches!(
                err,
                DecodeError::Short {
                    got: 100,
                    needed: 128
                }
            ),
            "{err}"
        );
        assert!(decode_yuyv(&[], 2, 1, 4).is_err());
        assert!(matches!(
            decode_yuyv(&[16; 16], 0, 2, 4),
            Err(DecodeError::Geometry { .. })
        ));
    }
}
