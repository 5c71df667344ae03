//! YUYV 4:2:2 frames to RGB, BT.601 limited range, in fixed point.

use super::decode::DecodeError;
use image::RgbImage;

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
