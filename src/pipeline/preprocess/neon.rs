//! NEON kernels of the resampler in `resample.rs` (aarch64, where NEON is always present).
//!
//! They read the same tables as the AVX2 kernels (`Plan::fixed_rows`, [`Blocks`]) and give the
//! values of the scalar passes up to rounding: the vertical pass weighs the rows with 16-bit
//! fixed-point weights but sums exactly (see [`vertical`]); the horizontal pass uses fused
//! multiply-adds and normalises with weights that include the scale.

use super::blocks::{Block, Blocks, OutRow, Rows, FIXED_ONE};
use crate::config::Layout;
use std::arch::aarch64::*;

/// Vertical pass: `out[i] = Σ_k v_k · weights[k] / FIXED_ONE`, where `v_k = src[(row0 + k) ·
/// stride + x0 + i]` and `weights` sum to [`FIXED_ONE`] (all of them `rows`' fields; so `out[i]`
/// is in 0..=255, as the scalar pass's).
///
/// 16 values at a time, then one at a time: the bytes are widened to 16 bits and multiplied by
/// the weight into 32-bit lanes with a widening multiply-accumulate. The sum is exact (it is at
/// most `255 · FIXED_ONE < 2²⁴`, so its conversion to f32 is exact too): against the scalar
/// pass's f32 weights the values differ only by the weights' rounding, at most `(taps - 1) /
/// 512` of a level (each running sum of the weights is rounded to a unit, see
/// `Axis::fixed_point`), well inside the `(taps / 2 + 1) / 255` of the AVX2 kernel.
///
/// It also prefetches the same columns of the source rows `rows.prefetch` (rows a later output
/// row reads first), one cache line per row every 64 bytes of its own progress, as the AVX2
/// kernel does and for the same reason: a frame's rows are too short for a hardware prefetcher
/// to follow, and the frame comes from memory whenever inference ran since it was last read.
#[target_feature(enable = "neon")]
pub(super) fn vertical(rows: &Rows, out: &mut [f32]) {
    let Some(base) = rows.start(out) else { return };
    let (n, stride, weights) = (out.len(), rows.stride, rows.weights);
    let ahead = rows.src.as_ptr();
    let dst = out.as_mut_ptr();
    let unit = 1.0 / f32::from(FIXED_ONE);
    let mut i = 0;
    while i + 16 <= n {
        rows.prefetch(i, |at| prefetch_line(ahead.wrapping_add(at)));
        let mut acc = [vdupq_n_u32(0); 4];
        for (k, &w) in weights.iter().enumerate() {
            // SAFETY: row `row0 + k` is in `src` (checked by `start`) and `i + 16 <= n`.
            let v = unsafe { vld1q_u8(base.add(k * stride + i)) };
            let (lo, hi) = (vmovl_u8(vget_low_u8(v)), vmovl_high_u8(v));
            let w4 = vdup_n_u16(w);
            let w8 = vdupq_n_u16(w);
            acc[0] = vmlal_u16(acc[0], vget_low_u16(lo), w4);
            acc[1] = vmlal_high_u16(acc[1], lo, w8);
            acc[2] = vmlal_u16(acc[2], vget_low_u16(hi), w4);
            acc[3] = vmlal_high_u16(acc[3], hi, w8);
        }
        for (q, a) in acc.into_iter().enumerate() {
            // SAFETY: values `i + 4q .. i + 4q + 4` of `out`, with `i + 16 <= n`.
            unsafe { vst1q_f32(dst.add(i + 4 * q), vmulq_n_f32(vcvtq_f32_u32(a), unit)) };
        }
        i += 16;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        let sum: u32 = weights
            .iter()
            .enumerate()
            .map(|(k, &w)| u32::from(rows.value(k, j)) * u32::from(w))
            .sum();
        *o = sum as f32 * unit;
    }
}

/// Asks for the cache line holding `at` (a hint: it never faults, whatever the address).
#[inline]
fn prefetch_line(at: *const u8) {
    // SAFETY: a prefetch hint neither reads nor writes memory that Rust can observe.
    unsafe {
        std::arch::asm!(
            "prfm pldl1keep, [{at}]",
            at = in(reg) at,
            options(nostack, preserves_flags, readonly)
        )
    };
}

/// Horizontal pass, normalisation and layout: writes the output row `to` (three planes or
/// interleaved) from the vertical pass's `columns`, with `TAPS` taps (`blocks.taps` when 0).
///
/// Output pixel `x`, source channel `c`, is `bias_c + Σ_j w_j · s_c · columns[3 · (starts[x] +
/// j) + c]`, with the normalising scale `s_c` folded into the weights (see [`Blocks`]). Eight
/// pixels at a time: per pixel and tap, one fused multiply-add of the 4 values from its source
/// column (RGB and one value whose weight is 0). Each half block's four pixel vectors are then
/// transposed into one vector per channel, stored into the three planes or, in the model's
/// channel order, interleaved by one `st3`. The row's last block goes through a buffer, so that
/// nothing is written past the row's pixels.
#[target_feature(enable = "neon")]
pub(super) fn horizontal<const TAPS: usize>(columns: &[f32], blocks: &Blocks, mut to: OutRow) {
    let taps = if TAPS > 0 { TAPS } else { blocks.taps };
    let (count, planes) = to.check(blocks, taps, columns.len());
    // SAFETY: 4 values.
    let bias = unsafe { vld1q_f32(blocks.bias.as_ptr()) };
    let order = blocks.order;
    let (y, width) = (to.y, to.width);
    let dst = to.out.as_mut_ptr() as *mut f32;
    for b in 0..count {
        let x = 8 * b;
        // SAFETY: `starts` and `weights` hold block `b` (checked above), and every start
        // reads within `reach <= columns.len()`.
        let pixels = unsafe { block::<TAPS>(blocks.block(columns, b, taps), bias) };
        // Per half block, one vector per source channel.
        let halves = [
            planar([pixels[0], pixels[1], pixels[2], pixels[3]]),
            planar([pixels[4], pixels[5], pixels[6], pixels[7]]),
        ];
        let last = b + 1 == count;
        match to.layout {
            Layout::Nchw => {
                let mut tail = [[0f32; 8]; 3];
                for (h, channels) in halves.iter().enumerate() {
                    for (c, &v) in channels.iter().enumerate() {
                        if !last {
                            // SAFETY: pixels `x .. x + 8 <= width` of row `y` of plane `c`.
                            unsafe { vst1q_f32(dst.add(planes[c] + y * width + x + 4 * h), v) };
                        } else {
                            // SAFETY: 4 of the 8 values of `tail[c]`.
                            unsafe { vst1q_f32(tail[c][4 * h..].as_mut_ptr(), v) };
                        }
                    }
                }
                if last {
                    to.last_planes(planes, x, &tail);
                }
            }
            Layout::Nhwc => {
                let mut tail = [0f32; 24];
                for (h, c) in halves.iter().enumerate() {
                    let model_order = float32x4x3_t(c[order[0]], c[order[1]], c[order[2]]);
                    if !last {
                        // SAFETY: values `3 (x + 4h) .. 3 (x + 4h + 4)` of row `y`, inside the
                        // row since this is not its last block.
                        unsafe { vst3q_f32(dst.add(3 * (y * width + x + 4 * h)), model_order) };
                    } else {
                        // SAFETY: 12 of the 24 values of `tail`.
                        unsafe { vst3q_f32(tail[12 * h..].as_mut_ptr(), model_order) };
                    }
                }
                if last {
                    to.last_pixels(x, &tail);
                }
            }
        }
    }
}

/// The sums of one block of 8 pixels, one vector `[RGB 0]` (source channel order) per pixel,
/// with `TAPS` taps (`at.taps` when 0).
///
/// # Safety
/// `at.weights` holds `32 · taps` values, and `at.columns` holds the values from `3 · start` to
/// `3 · (start + taps) + 1` for each of the 8 `at.starts`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block<const TAPS: usize>(at: Block, bias: float32x4_t) -> [float32x4_t; 8] {
    let taps = if TAPS > 0 { TAPS } else { at.taps };
    let zero = vdupq_n_f32(0.0);
    let (columns, mut w) = (at.columns, at.weights);
    let mut pixels = [zero; 8];
    for q in 0..4 {
        // The pair `(q, q + 4)` of the block (see `Blocks`).
        let (a, b) = at.pair(q);
        // Two chains per pixel (even and odd taps), so that each is half as long.
        let (mut sa, mut sb) = ([bias, zero], [bias, zero]);
        for j in 0..taps {
            // SAFETY: within `columns` and `weights` (the caller's contract).
            unsafe {
                sa[j % 2] = vfmaq_f32(sa[j % 2], vld1q_f32(columns.add(a + 3 * j)), vld1q_f32(w));
                sb[j % 2] = vfmaq_f32(
                    sb[j % 2],
                    vld1q_f32(columns.add(b + 3 * j)),
                    vld1q_f32(w.add(4)),
                );
                w = w.add(8);
            }
        }
        pixels[q] = vaddq_f32(sa[0], sa[1]);
        pixels[q + 4] = vaddq_f32(sb[0], sb[1]);
    }
    pixels
}

/// One vector per source channel from four pixel vectors `[c0 c1 c2 0]`.
#[inline]
#[target_feature(enable = "neon")]
fn planar([p0, p1, p2, p3]: [float32x4_t; 4]) -> [float32x4_t; 3] {
    // [c0 of 0, c0 of 1, c2 of 0, c2 of 1], [c1 of 0, c1 of 1, 0, 0], and the same for 2 and 3;
    // then the low halves of each pair side by side (c0 and c1), and the high ones (c2).
    let (even01, odd01) = (vtrn1q_f32(p0, p1), vtrn2q_f32(p0, p1));
    let (even23, odd23) = (vtrn1q_f32(p2, p3), vtrn2q_f32(p2, p3));
    let (even01, odd01) = (vreinterpretq_f64_f32(even01), vreinterpretq_f64_f32(odd01));
    let (even23, odd23) = (vreinterpretq_f64_f32(even23), vreinterpretq_f64_f32(odd23));
    [
        vreinterpretq_f32_f64(vzip1q_f64(even01, even23)),
        vreinterpretq_f32_f64(vzip1q_f64(odd01, odd23)),
        vreinterpretq_f32_f64(vzip2q_f64(even01, even23)),
    ]
}
