//! The tables the SIMD kernels of the resampler (`avx2.rs`, `neon.rs`) read: the vertical pass's
//! fixed point and the horizontal pass's blocks. A leaf: the kernels and `resample.rs` import it,
//! it imports neither.

use super::weights::Axis;
use super::Norm;
use std::mem::MaybeUninit;

/// The vertical pass's fixed point: each output row's weights are integers that sum to this.
///
/// With it, a sum of taps fits in 16 bits in the AVX2 kernel's arithmetic (see
/// `avx2::vertical`), and an exact sum of `v · w` over the taps (`v <= 255`) is at most `255 ·
/// FIXED_ONE < 2²⁴`, so that it converts to f32 exactly (the NEON kernel). And `sum / 255` is
/// the value in 0..=255.
pub(super) const FIXED_ONE: u16 = 255 * 256;

/// The horizontal pass's column starts and weights, with the normalisation folded in, as the
/// SIMD kernels read them: output pixels in blocks of 8, each block as the four pairs `(x, x +
/// 4)`, one pixel per 128-bit half of an AVX2 register or per NEON register (the row's last
/// pixel stands in for those past its end).
#[derive(Debug)]
pub(super) struct Blocks {
    pub taps: usize,
    /// Per pair: the first source column of each of its two pixels.
    pub starts: Vec<usize>,
    /// Per pair and tap, the 8 lanes `[a·s0, a·s1, a·s2, 0, b·s0, b·s1, b·s2, 0]`: the two
    /// pixels' weights `a` and `b` times each source channel's normalising scale.
    pub weights: Vec<f32>,
    /// Each source channel's normalising bias, in the same lanes.
    pub bias: [f32; 8],
    /// Source channel of each of the model's channels.
    pub order: [usize; 3],
    /// How many of the vertical pass's values the pass reads: pixel `x`'s last read ends at
    /// `3 · (start + taps - 1) + 4`.
    pub reach: usize,
}

impl Blocks {
    /// The tables for the columns `cols` and the normalisation `norm`.
    pub fn new(cols: &Axis, norm: &Norm) -> Self {
        let (scale, bias) = (
            by_source(norm.order, norm.scale),
            by_source(norm.order, norm.bias),
        );
        let width = cols.starts.len();
        let pairs: Vec<(usize, usize)> = (0..width.div_ceil(8))
            .flat_map(|b| (0..4).map(move |q| (8 * b + q, 8 * b + q + 4)))
            .map(|(a, b)| (a.min(width - 1), b.min(width - 1)))
            .collect();
        let lanes = |w: f32| [w * scale[0], w * scale[1], w * scale[2], 0.0];
        let weights = pairs
            .iter()
            .flat_map(|&(a, b)| {
                (0..cols.taps).flat_map(move |j| {
                    let [wa, wb] = [a, b].map(|x| cols.weights[x * cols.taps + j]);
                    let ([a0, a1, a2, a3], [b0, b1, b2, b3]) = (lanes(wa), lanes(wb));
                    [a0, a1, a2, a3, b0, b1, b2, b3]
                })
            })
            .collect();
        let starts: Vec<usize> = pairs
            .iter()
            .flat_map(|&(a, b)| [cols.starts[a], cols.starts[b]])
            .collect();
        Blocks {
            taps: cols.taps,
            reach: starts.iter().max().map_or(0, |s| 3 * (s + cols.taps) + 1),
            starts,
            weights,
            bias: [
                bias[0], bias[1], bias[2], 0.0, bias[0], bias[1], bias[2], 0.0,
            ],
            order: norm.order,
        }
    }
}

/// Values given per model channel (`order[k]` is the source channel of model channel `k`),
/// indexed by source channel instead.
/// Writes the first values of `values` into `out`, as many as `out` holds: the row's last block,
/// computed into a buffer, goes out without writing past the row.
pub(super) fn write_prefix(out: &mut [MaybeUninit<f32>], values: &[f32]) {
    for (o, &v) in out.iter_mut().zip(values) {
        o.write(v);
    }
}

pub(super) fn by_source<T: Copy + Default>(order: [usize; 3], values: [T; 3]) -> [T; 3] {
    let mut by_source = [T::default(); 3];
    for (k, &c) in order.iter().enumerate() {
        by_source[c] = values[k];
    }
    by_source
}

/// `$kernel::<TAPS>` for the common tap counts 1 to 8 (so that the kernel's tap loop is
/// unrolled), `$kernel::<0>` (which reads the count from its tables) for any other.
macro_rules! by_taps {
    ($kernel:ident, $taps:expr) => {
        match $taps {
            1 => $kernel::<1>,
            2 => $kernel::<2>,
            3 => $kernel::<3>,
            4 => $kernel::<4>,
            5 => $kernel::<5>,
            6 => $kernel::<6>,
            7 => $kernel::<7>,
            8 => $kernel::<8>,
            _ => $kernel::<0>,
        }
    };
}
pub(super) use by_taps;

impl Blocks {
    /// Checks what a horizontal kernel relies on before it reads `columns` and writes row `y` of
    /// `out` (`width` pixels per row, three planes' worth): the tables hold every block of the
    /// row for `taps` taps, every start reads within `columns`, and the row lies in `out`.
    /// Returns the number of blocks and the size of a plane.
    pub fn check(
        &self,
        taps: usize,
        columns: usize,
        out: usize,
        y: usize,
        width: usize,
    ) -> (usize, usize) {
        let count = width.div_ceil(8);
        assert!(self.starts.len() == 8 * count && self.weights.len() == 32 * taps * count);
        assert!(self.taps == taps && self.reach <= columns);
        let plane = out / 3;
        assert!(out == 3 * plane && (y + 1) * width <= plane);
        (count, plane)
    }
}
