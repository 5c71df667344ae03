//! AVX2 + FMA kernels of the resampler in `resample.rs`.
//!
//! Each gives the values of its scalar counterpart there up to rounding: the passes that sum
//! weighted values use fused multiply-adds (one rounding where the scalar code has two); the
//! normalisation is the same multiply then add.

use super::resample::{write_nchw_from, write_nhwc_from};
use super::Norm;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Vertical pass: `out[i] = Σ_k weights[k] · src[(row0 + k) · stride + x0 + i]`.
///
/// It also prefetches the same columns of the source rows `prefetch` (rows a later output row
/// reads first), one cache line per row every 64 bytes of its own progress. Spread like this
/// the fetches overlap the arithmetic; a burst of them at the start of a row would fill the
/// core's miss buffers and stall it. A frame comes from memory, not from the caches, whenever
/// inference ran since it was last read, and its rows are too short for the hardware
/// prefetcher to follow them: without this the pass takes about twice as long there.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn vertical(
    src: &[u8],
    stride: usize,
    row0: usize,
    weights: &[f32],
    x0: usize,
    out: &mut [f32],
    prefetch: Range<usize>,
) {
    let n = out.len();
    if weights.is_empty() {
        out.fill(0.0);
        return;
    }
    // Every row read or prefetched lies in `src`: the pointer arithmetic below stays inside it.
    assert!((row0 + weights.len() - 1) * stride + x0 + n <= src.len());
    assert!(prefetch.is_empty() || (prefetch.end - 1) * stride + x0 + n <= src.len());
    let base = src[row0 * stride + x0..].as_ptr();
    let ahead = src.as_ptr();
    let dst = out.as_mut_ptr();
    // Converts the 8 bytes at `p` to f32.
    // SAFETY (of each call): `p .. p + 8` lies in `src`, as the loop bounds below ensure.
    let load8 = |p: *const u8| unsafe {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    };
    let mut i = 0;
    while i + 32 <= n {
        if i % 64 == 0 {
            for r in prefetch.clone() {
                // SAFETY: row `r` is in `src` (asserted above) and `i < n`.
                _mm_prefetch::<_MM_HINT_T0>(unsafe { ahead.add(r * stride + x0 + i) } as *const i8);
            }
        }
        let mut acc = [_mm256_setzero_ps(); 4];
        for (k, &w) in weights.iter().enumerate() {
            let w = _mm256_set1_ps(w);
            // SAFETY: row `row0 + k` is in `src` (asserted above) and `i + 32 <= n`.
            let p = unsafe { base.add(k * stride + i) };
            for (q, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above, `8 * q + 8 <= 32`.
                *acc = _mm256_fmadd_ps(load8(unsafe { p.add(8 * q) }), w, *acc);
            }
        }
        for (q, acc) in acc.iter().enumerate() {
            // SAFETY: `i + 32 <= n = out.len()`.
            unsafe { _mm256_storeu_ps(dst.add(i + 8 * q), *acc) };
        }
        i += 32;
    }
    while i + 8 <= n {
        let mut acc = _mm256_setzero_ps();
        for (k, &w) in weights.iter().enumerate() {
            // SAFETY: row `row0 + k` is in `src` and `i + 8 <= n`.
            let p = unsafe { base.add(k * stride + i) };
            acc = _mm256_fmadd_ps(load8(p), _mm256_set1_ps(w), acc);
        }
        // SAFETY: `i + 8 <= n = out.len()`.
        unsafe { _mm256_storeu_ps(dst.add(i), acc) };
        i += 8;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        *o = weights.iter().enumerate().fold(0.0, |acc, (k, &w)| {
            f32::mul_add(src[(row0 + k) * stride + x0 + j] as f32, w, acc)
        });
    }
}

/// Horizontal pass: output pixel `x` is `Σ_j w_j · columns[3 · (starts[x] + j) ..][..3]`,
/// written to `row[3x ..][..3]` in the model's channel order.
///
/// Two pixels at a time, one in each 128-bit half: per tap, one multiply-add of the 4 values
/// from each pixel's source column (RGB and one value the weights ignore) by `weights`, which
/// holds for each pair of pixels and tap `[a, a, a, a, b, b, b, b]`. `starts` and `weights`
/// cover an even number of pixels (an odd row's last pixel is repeated); `row` has room for
/// them and two spare values.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn horizontal(
    columns: &[f32],
    starts: &[usize],
    weights: &[f32],
    taps: usize,
    order: [usize; 3],
    row: &mut [f32],
) {
    // One copy per common tap count, so that the tap loop is unrolled.
    match taps {
        1 => horizontal_taps::<1>(columns, starts, weights, taps, order, row),
        2 => horizontal_taps::<2>(columns, starts, weights, taps, order, row),
        3 => horizontal_taps::<3>(columns, starts, weights, taps, order, row),
        4 => horizontal_taps::<4>(columns, starts, weights, taps, order, row),
        5 => horizontal_taps::<5>(columns, starts, weights, taps, order, row),
        6 => horizontal_taps::<6>(columns, starts, weights, taps, order, row),
        7 => horizontal_taps::<7>(columns, starts, weights, taps, order, row),
        8 => horizontal_taps::<8>(columns, starts, weights, taps, order, row),
        _ => horizontal_taps::<0>(columns, starts, weights, taps, order, row),
    }
}

/// [`horizontal`] with `TAPS` taps (`taps` when `TAPS` is 0).
#[target_feature(enable = "avx2,fma")]
unsafe fn horizontal_taps<const TAPS: usize>(
    columns: &[f32],
    starts: &[usize],
    weights: &[f32],
    taps: usize,
    order: [usize; 3],
    row: &mut [f32],
) {
    let taps = if TAPS > 0 { TAPS } else { taps };
    let width = starts.len();
    assert!(width % 2 == 0 && row.len() >= 3 * width + 2 && weights.len() == 4 * taps * width);
    // The last read of pixel `x` ends at `3 · (starts[x] + taps - 1) + 4`.
    let reach = starts.iter().max().map_or(0, |s| 3 * (s + taps) + 1);
    assert!(reach <= columns.len());
    // Both pixels' values side by side, in the model's channel order.
    let (o0, o1, o2) = (order[0] as i32, order[1] as i32, order[2] as i32);
    let pack = _mm256_setr_epi32(o0, o1, o2, 4 + o0, 4 + o1, 4 + o2, 3, 7);
    let src = columns.as_ptr();
    let dst = row.as_mut_ptr();
    let mut w = weights.as_ptr();
    for x in (0..width).step_by(2) {
        let (a, b) = (3 * starts[x], 3 * starts[x + 1]);
        // Two sums (even and odd taps), so that the chains of multiply-adds are half as long.
        let mut acc = [_mm256_setzero_ps(); 2];
        for j in 0..taps {
            // SAFETY: `3 · (start + j) + 4 <= reach <= columns.len()` for both pixels (asserted
            // above); `weights` holds `8 · taps` values per pair of pixels.
            unsafe {
                let v = _mm256_loadu2_m128(src.add(b + 3 * j), src.add(a + 3 * j));
                acc[j % 2] = _mm256_fmadd_ps(v, _mm256_loadu_ps(w), acc[j % 2]);
                w = w.add(8);
            }
        }
        let acc = _mm256_add_ps(acc[0], acc[1]);
        let sum = _mm256_permutevar8x32_ps(acc, pack);
        // Lanes 6 and 7 land on the next pixels' first values (written next) or, after the last
        // pixel, on the row's spare values.
        // SAFETY: `3x + 8 <= 3 · width + 2 <= row.len()` (asserted above).
        unsafe { _mm256_storeu_ps(dst.add(3 * x), sum) };
    }
}

/// Lane tables that gather model channel `k` of 8 interleaved pixels held in three vectors (24
/// values): which lanes come from the second and third vector (sign bit set), and then where
/// each pixel's value sits.
const fn gather(k: usize) -> [[i32; 8]; 3] {
    let mut t = [[0i32; 8]; 3];
    let mut p = 0;
    while p < 8 {
        let at = 3 * p + k;
        let (v, lane) = (at / 8, at % 8);
        if v == 1 {
            t[0][lane] = -1;
        }
        if v == 2 {
            t[1][lane] = -1;
        }
        t[2][p] = lane as i32;
        p += 1;
    }
    t
}
const GATHER: [[[i32; 8]; 3]; 3] = [gather(0), gather(1), gather(2)];

/// Normalises output row `y` (`row`: interleaved, model channel order) into three planes.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn write_nchw(
    row: &[f32],
    norm: &Norm,
    out: &mut [MaybeUninit<f32>],
    y: usize,
    width: usize,
) {
    let plane = out.len() / 3;
    assert!(row.len() >= 3 * width && out.len() == 3 * plane && (y + 1) * width <= plane);
    // SAFETY: unaligned loads of 8-value arrays.
    let load = |t: &[i32; 8]| unsafe { _mm256_loadu_si256(t.as_ptr() as *const __m256i) };
    let tables = GATHER.each_ref().map(|t| t.each_ref().map(load));
    let scale = norm.scale.map(|s| _mm256_set1_ps(s));
    let bias = norm.bias.map(|b| _mm256_set1_ps(b));
    let src = row.as_ptr();
    let dst = out.as_mut_ptr() as *mut f32;
    let mut x = 0;
    while x + 8 <= width {
        // SAFETY: values `3x .. 3x + 24` lie in `row` (`x + 8 <= width`); values `x .. x + 8`
        // of row `y` of each plane lie in `out`.
        unsafe {
            let a = _mm256_loadu_ps(src.add(3 * x));
            let b = _mm256_loadu_ps(src.add(3 * x + 8));
            let c = _mm256_loadu_ps(src.add(3 * x + 16));
            for k in 0..3 {
                let [from_b, from_c, place] = tables[k];
                let v = _mm256_blendv_ps(a, b, _mm256_castsi256_ps(from_b));
                let v = _mm256_blendv_ps(v, c, _mm256_castsi256_ps(from_c));
                let v = _mm256_permutevar8x32_ps(v, place);
                let v = _mm256_add_ps(_mm256_mul_ps(v, scale[k]), bias[k]);
                _mm256_storeu_ps(dst.add(k * plane + y * width + x), v);
            }
        }
        x += 8;
    }
    write_nchw_from(x, row, norm, out, y, width);
}

/// Normalises output row `y` (`row`: interleaved, model channel order) into interleaved values.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn write_nhwc(
    row: &[f32],
    norm: &Norm,
    out: &mut [MaybeUninit<f32>],
    y: usize,
    width: usize,
) {
    let n = 3 * width;
    assert!(row.len() >= n && out.len() >= (y + 1) * n);
    // Value `i` of a block of 24 has channel `i % 3`.
    let lanes = |v: [f32; 3], j: usize| {
        _mm256_setr_ps(
            v[(8 * j) % 3],
            v[(8 * j + 1) % 3],
            v[(8 * j + 2) % 3],
            v[(8 * j + 3) % 3],
            v[(8 * j + 4) % 3],
            v[(8 * j + 5) % 3],
            v[(8 * j + 6) % 3],
            v[(8 * j + 7) % 3],
        )
    };
    let scale = [0, 1, 2].map(|j| lanes(norm.scale, j));
    let bias = [0, 1, 2].map(|j| lanes(norm.bias, j));
    let src = row.as_ptr();
    // SAFETY: row `y` of the output lies in `out` (asserted above).
    let dst = unsafe { (out.as_mut_ptr() as *mut f32).add(y * n) };
    let mut i = 0;
    while i + 24 <= n {
        for j in 0..3 {
            // SAFETY: `i + 24 <= n`: values `i .. i + 24` lie in `row` and in output row `y`.
            unsafe {
                let v = _mm256_loadu_ps(src.add(i + 8 * j));
                let v = _mm256_add_ps(_mm256_mul_ps(v, scale[j]), bias[j]);
                _mm256_storeu_ps(dst.add(i + 8 * j), v);
            }
        }
        i += 24;
    }
    write_nhwc_from(i, row, norm, out, y, width);
}
