//! AVX2 + FMA kernels of the resampler in `resample.rs`.
//!
//! Each gives the values of its scalar counterpart there up to rounding: the vertical pass works
//! in 16-bit fixed point (within 0.01 of a level for the usual filters; see [`vertical`]); the
//! horizontal pass uses fused multiply-adds (one rounding where the scalar code has two) and
//! normalises with weights that include the scale (the scalar code scales the sum).

use super::blocks::{Block, Blocks, OutRow, Rows};
use crate::config::Layout;
use std::arch::x86_64::*;

/// What a sum of `taps` taps starts from: each tap is rounded down, by half a unit on average.
fn rounding(taps: usize) -> u16 {
    (taps / 2).min(255) as u16
}

/// Vertical pass, in 16-bit fixed point: `out[i] = (rounding + Σ_k ⌊v_k · 256 · weights[k] /
/// 65536⌋) / 255`, where `v_k = src[(row0 + k) · stride + x0 + i]` and `weights` sum to
/// [`FIXED_ONE`](super::blocks::FIXED_ONE) (all of them `rows`' fields). A sum of taps is at
/// most `rounding + 255 · FIXED_ONE / 256` (each tap is `⌊v · 256 · w / 65536⌋` with `v <=
/// 255`): with `rounding <= 255` it fits in a 16-bit lane. Against the scalar pass's f32 weights
/// the values are off by at most `(taps / 2 + 1) / 255` of a level (rounding of the weights and
/// of each tap): about 0.01 for the usual 2 to 6 taps.
///
/// 32 values at a time, then 16, then one at a time: each byte goes into the high half of a
/// 16-bit lane (`v · 256`), and one high-half multiply and one add per lane and row take the
/// tap, twice as many lanes per instruction as with f32.
///
/// It also prefetches the same columns of the source rows `rows.prefetch` (rows a later output
/// row reads first), one cache line per row every 64 bytes of its own progress. Spread like this
/// the fetches overlap the arithmetic; a burst of them at the start of a row would fill the
/// core's miss buffers and stall it. A frame comes from memory, not from the caches, whenever
/// inference ran since it was last read, and its rows are too short for the hardware
/// prefetcher to follow them: without this the pass takes about twice as long there.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn vertical(rows: &Rows, out: &mut [f32]) {
    let Some(base) = rows.start(out) else { return };
    let (n, stride, weights) = (out.len(), rows.stride, rows.weights);
    let ahead = rows.src.as_ptr();
    let dst = out.as_mut_ptr();
    let round = _mm256_set1_epi16(rounding(weights.len()) as i16);
    let unit = _mm256_set1_ps(1.0 / 255.0);
    // The 8 sums of a 128-bit half, as f32.
    let to_f32 = |v: __m128i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(v)), unit);
    let mut i = 0;
    // The taps' sums of the bytes from `i` in 16-bit lanes, with the intrinsics of one vector
    // width (32 or 16 bytes): bytes 0-7 (and 16-23) in the first vector, 8-15 (and 24-31) in
    // the second, as the unpacks work per 128-bit half.
    macro_rules! sum_taps {
        (256) => {
            sum_taps!(
                round,
                _mm256_setzero_si256,
                _mm256_loadu_si256 as __m256i,
                _mm256_set1_epi16,
                _mm256_unpacklo_epi8,
                _mm256_unpackhi_epi8,
                _mm256_mulhi_epu16,
                _mm256_add_epi16
            )
        };
        (128) => {
            sum_taps!(
                _mm256_castsi256_si128(round),
                _mm_setzero_si128,
                _mm_loadu_si128 as __m128i,
                _mm_set1_epi16,
                _mm_unpacklo_epi8,
                _mm_unpackhi_epi8,
                _mm_mulhi_epu16,
                _mm_add_epi16
            )
        };
        ($round:expr, $zero:ident, $load:ident as $v:ty, $set1:ident, $unpacklo:ident,
            $unpackhi:ident, $mulhi:ident, $add:ident) => {{
            let zero = $zero();
            let (mut lo, mut hi) = ($round, $round);
            for (k, &w) in weights.iter().enumerate() {
                let w = $set1(w as i16);
                // SAFETY: row `row0 + k` is in `src` (checked by `start`), and so are the
                // vector's bytes from `i` (`i + 32 <= n`, or `i + 16 <= n`).
                let v = unsafe { $load(base.add(k * stride + i) as *const $v) };
                lo = $add(lo, $mulhi($unpacklo(zero, v), w));
                hi = $add(hi, $mulhi($unpackhi(zero, v), w));
            }
            (lo, hi)
        }};
    }
    while i + 32 <= n {
        rows.prefetch(i, |at| {
            // SAFETY: `at` is in `src` (see `Rows::prefetch`).
            _mm_prefetch::<_MM_HINT_T0>(unsafe { ahead.add(at) } as *const i8)
        });
        let (lo, hi) = sum_taps!(256);
        // SAFETY: `i + 32 <= n = out.len()`.
        unsafe {
            _mm256_storeu_ps(dst.add(i), to_f32(_mm256_castsi256_si128(lo)));
            _mm256_storeu_ps(dst.add(i + 8), to_f32(_mm256_castsi256_si128(hi)));
            _mm256_storeu_ps(dst.add(i + 16), to_f32(_mm256_extracti128_si256::<1>(lo)));
            _mm256_storeu_ps(dst.add(i + 24), to_f32(_mm256_extracti128_si256::<1>(hi)));
        }
        i += 32;
    }
    if i + 16 <= n {
        let (lo, hi) = sum_taps!(128);
        // SAFETY: `i + 16 <= n = out.len()`.
        unsafe {
            _mm256_storeu_ps(dst.add(i), to_f32(lo));
            _mm256_storeu_ps(dst.add(i + 8), to_f32(hi));
        }
        i += 16;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        let sum = weights
            .iter()
            .enumerate()
            .fold(rounding(weights.len()), |sum, (k, &w)| {
                let v = u32::from(rows.value(k, j)) << 8;
                sum + ((v * u32::from(w)) >> 16) as u16
            });
        *o = f32::from(sum) * (1.0 / 255.0);
    }
}

/// Horizontal pass, normalisation and layout: writes the output row `to` (three planes or
/// interleaved) from the vertical pass's `columns`, with `TAPS` taps (`blocks.taps` when 0).
///
/// Output pixel `x`, source channel `c`, is `bias_c + Σ_j w_j · s_c · columns[3 · (starts[x] +
/// j) + c]`: the normalising scale `s_c` is folded into the weights (see [`Blocks`]). Eight
/// pixels at a time, as four pairs `(x, x + 4)`, one pixel in each 128-bit half: per tap, one
/// multiply-add of the 4 values from each pixel's source column (RGB and one value whose weight
/// is 0). The four sums are then transposed into one vector of 8 pixels per channel (three
/// planes) or permuted into the model's channel order and stored interleaved. The row's last
/// block goes through a buffer, so that nothing is written past the row's pixels.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn horizontal<const TAPS: usize>(
    columns: &[f32],
    blocks: &Blocks,
    mut to: OutRow,
) {
    let taps = if TAPS > 0 { TAPS } else { blocks.taps };
    let (count, planes) = to.check(blocks, taps, columns.len());
    // SAFETY: 8 values.
    let bias = unsafe { _mm256_loadu_ps(blocks.bias.as_ptr()) };
    let order = blocks.order;
    let (o0, o1, o2) = (order[0] as i32, order[1] as i32, order[2] as i32);
    let pack = _mm256_setr_epi32(o0, o1, o2, 3, 4 + o0, 4 + o1, 4 + o2, 7);
    let (y, width) = (to.y, to.width);
    let dst = to.out.as_mut_ptr() as *mut f32;
    for b in 0..count {
        let x = 8 * b;
        // SAFETY: `starts` and `weights` hold block `b` (checked above), and every start
        // reads within `reach <= columns.len()`.
        let sums = unsafe { block::<TAPS>(blocks.block(columns, b, taps), bias) };
        let last = b + 1 == count;
        match to.layout {
            Layout::Nchw => {
                let [c0, c1, c2] = planar(sums);
                if !last {
                    // SAFETY: pixels `x .. x + 8 <= width` of row `y` of each plane.
                    unsafe {
                        let at = dst.add(y * width + x);
                        _mm256_storeu_ps(at.add(planes[0]), c0);
                        _mm256_storeu_ps(at.add(planes[1]), c1);
                        _mm256_storeu_ps(at.add(planes[2]), c2);
                    }
                } else {
                    let mut tail = [[0f32; 8]; 3];
                    // SAFETY: 8 values each.
                    unsafe {
                        _mm256_storeu_ps(tail[0].as_mut_ptr(), c0);
                        _mm256_storeu_ps(tail[1].as_mut_ptr(), c1);
                        _mm256_storeu_ps(tail[2].as_mut_ptr(), c2);
                    }
                    to.last_planes(planes, x, &tail);
                }
            }
            Layout::Nhwc => {
                let sums = sums.map(|s| _mm256_permutevar8x32_ps(s, pack));
                if !last {
                    // SAFETY: values `3x .. 3x + 25` of row `y` lie in the output: this is not
                    // the row's last block, so the 25th is the first value of the next block,
                    // which writes it next.
                    unsafe { interleaved(sums, dst.add(3 * (y * width + x))) };
                } else {
                    let mut tail = [0f32; 25];
                    // SAFETY: `tail` holds the 25 values written.
                    unsafe { interleaved(sums, tail.as_mut_ptr()) };
                    to.last_pixels(x, &tail);
                }
            }
        }
    }
}

/// The sums of one block of 8 pixels: `[RGB0 0 | RGB4 0]`, `[RGB1 0 | RGB5 0]`, `[RGB2 0 |
/// RGB6 0]`, `[RGB3 0 | RGB7 0]` (source channel order), with `TAPS` taps (`at.taps` when 0).
///
/// # Safety
/// AVX2 and FMA must be available; `at.weights` holds `32 · taps` values, and `at.columns` holds
/// the values from `3 · start` to `3 · (start + taps) + 1` for each of the 8 `at.starts`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const TAPS: usize>(at: Block, bias: __m256) -> [__m256; 4] {
    let taps = if TAPS > 0 { TAPS } else { at.taps };
    let (columns, mut w) = (at.columns, at.weights);
    let mut sums = [_mm256_setzero_ps(); 4];
    for (q, sum) in sums.iter_mut().enumerate() {
        let (a, b) = at.pair(q);
        // Two chains (even and odd taps), so that each is half as long.
        let mut acc = [bias, _mm256_setzero_ps()];
        for j in 0..taps {
            // SAFETY: within `columns` and `weights` (the caller's contract).
            unsafe {
                let v = _mm256_loadu2_m128(columns.add(b + 3 * j), columns.add(a + 3 * j));
                acc[j % 2] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w), acc[j % 2]);
                w = w.add(8);
            }
        }
        *sum = _mm256_add_ps(acc[0], acc[1]);
    }
    sums
}

/// One vector of 8 pixels per source channel, from a block's sums.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn planar([s0, s1, s2, s3]: [__m256; 4]) -> [__m256; 3] {
    // [R0 R1 G0 G1 | R4 R5 G4 G5], [B0 B1 . . | B4 B5 . .], and the same for pixels 2, 3, 6, 7.
    let (rg01, b01) = (_mm256_unpacklo_ps(s0, s1), _mm256_unpackhi_ps(s0, s1));
    let (rg23, b23) = (_mm256_unpacklo_ps(s2, s3), _mm256_unpackhi_ps(s2, s3));
    [
        _mm256_shuffle_ps::<0x44>(rg01, rg23),
        _mm256_shuffle_ps::<0xEE>(rg01, rg23),
        _mm256_shuffle_ps::<0x44>(b01, b23),
    ]
}

/// Stores a block's sums (already in the model's channel order) as 8 interleaved pixels at
/// `dst`, and one value more (which the next pixel's store overwrites).
///
/// # Safety
/// AVX2 must be available; `dst .. dst + 25` must be writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn interleaved(sums: [__m256; 4], dst: *mut f32) {
    // Pixels 0-3 from the low halves, then 4-7 from the high ones: each store of 4 values
    // spills one into the next pixel, which the following store writes.
    for (q, s) in sums.iter().enumerate() {
        // SAFETY: values `3q .. 3q + 4` of 25 (the caller's contract).
        unsafe { _mm_storeu_ps(dst.add(3 * q), _mm256_castps256_ps128(*s)) };
    }
    for (q, s) in sums.iter().enumerate() {
        // SAFETY: values `3 (q + 4) .. 3 (q + 4) + 4` of 25.
        unsafe { _mm_storeu_ps(dst.add(3 * (q + 4)), _mm256_extractf128_ps::<1>(*s)) };
    }
}
