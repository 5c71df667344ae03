//! What the SIMD kernels of the resampler (`avx2.rs`, `neon.rs`) share: the tables they read
//! (the vertical pass's fixed point and the horizontal pass's blocks), their inputs, and the
//! parts of their passes that do not depend on the instruction set (checks, prefetch cadence,
//! each block's inputs, the row's last block). A leaf: the kernels and `resample.rs` import it,
//! it imports neither.

use super::weights::Axis;
use super::Norm;
use crate::config::Layout;
use std::mem::MaybeUninit;
use std::ops::Range;

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

/// Writes the first values of `values` into `out`, as many as `out` holds: the row's last block,
/// computed into a buffer, goes out without writing past the row.
fn write_prefix(out: &mut [MaybeUninit<f32>], values: &[f32]) {
    for (o, &v) in out.iter_mut().zip(values) {
        o.write(v);
    }
}

/// Values given per model channel (`order[k]` is the source channel of model channel `k`),
/// indexed by source channel instead.
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
    ($($kernel:ident)::+, $taps:expr) => {
        match $taps {
            1 => $($kernel)::+::<1>,
            2 => $($kernel)::+::<2>,
            3 => $($kernel)::+::<3>,
            4 => $($kernel)::+::<4>,
            5 => $($kernel)::+::<5>,
            6 => $($kernel)::+::<6>,
            7 => $($kernel)::+::<7>,
            8 => $($kernel)::+::<8>,
            _ => $($kernel)::+::<0>,
        }
    };
}
pub(super) use by_taps;

impl Blocks {
    /// Checks what a horizontal kernel relies on before it reads `columns` and writes row `y` of
    /// `out` (`width` pixels per row, three planes' worth): the tables hold every block of the
    /// row for `taps` taps, every start reads within `columns`, and the row lies in `out`.
    /// Returns the number of blocks and the size of a plane.
    fn check(
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

    /// Block `b` of the tables for `taps` taps, reading the vertical pass's `columns`.
    #[inline(always)]
    pub fn block<'a>(&'a self, columns: &[f32], b: usize, taps: usize) -> Block<'a> {
        Block {
            columns: columns.as_ptr(),
            starts: &self.starts[8 * b..][..8],
            weights: self.weights[32 * taps * b..].as_ptr(),
            taps,
        }
    }
}

/// The source rows a SIMD vertical pass weighs into the values of one output row: rows `row0 ..`
/// of `src` (`stride` bytes per row), each read from byte `x0`, with one fixed-point weight per
/// row (the weights sum to [`FIXED_ONE`]); and the source rows `prefetch` that a later output row
/// reads first (see `avx2::vertical`).
#[derive(Debug)]
pub(super) struct Rows<'a> {
    pub src: &'a [u8],
    pub stride: usize,
    pub row0: usize,
    pub weights: &'a [u16],
    pub x0: usize,
    pub prefetch: Range<usize>,
}

impl Rows<'_> {
    /// Where a vertical kernel starts reading for `out` (the values from byte `x0` of each row
    /// on): checks that every row read or prefetched for them lies in `src`, so that the
    /// kernel's pointer arithmetic stays inside it, and returns the address of the first row's
    /// first value. With no rows (no weights) it fills `out` with zeros and returns `None`.
    pub fn start(&self, out: &mut [f32]) -> Option<*const u8> {
        let Rows {
            src,
            stride,
            row0,
            weights,
            x0,
            ref prefetch,
        } = *self;
        let n = out.len();
        if weights.is_empty() {
            out.fill(0.0);
            return None;
        }
        assert!((row0 + weights.len() - 1) * stride + x0 + n <= src.len());
        assert!(prefetch.is_empty() || (prefetch.end - 1) * stride + x0 + n <= src.len());
        Some(src[row0 * stride + x0..].as_ptr())
    }

    /// Every 64 bytes of a vertical kernel's progress (at each `i` that is a multiple of 64), has
    /// `fetch` prefetch the values from `i` of each row of `prefetch`: it gets their offset in
    /// `src`, which [`start`](Self::start) checked to lie in it while `i < out.len()`.
    #[inline(always)]
    pub fn prefetch(&self, i: usize, fetch: impl Fn(usize)) {
        if i % 64 == 0 {
            for r in self.prefetch.clone() {
                fetch(r * self.stride + self.x0 + i);
            }
        }
    }

    /// Value `j` of row `row0 + k` (a kernel's last values, one at a time).
    #[inline(always)]
    pub fn value(&self, k: usize, j: usize) -> u8 {
        self.src[(self.row0 + k) * self.stride + self.x0 + j]
    }
}

/// Row `y` of the input tensor `out` (`width` pixels per row, three planes' worth, in `layout`),
/// as a SIMD horizontal pass writes it.
#[derive(Debug)]
pub(super) struct OutRow<'a> {
    pub out: &'a mut [MaybeUninit<f32>],
    pub layout: Layout,
    pub y: usize,
    pub width: usize,
}

impl OutRow<'_> {
    /// Checks what a horizontal kernel with `taps` taps relies on before it reads the vertical
    /// pass's `columns` values with `blocks` and writes this row (see [`Blocks::check`]).
    /// Returns the number of blocks and where each source channel's plane starts.
    #[inline(always)]
    pub fn check(&self, blocks: &Blocks, taps: usize, columns: usize) -> (usize, [usize; 3]) {
        let (count, plane) = blocks.check(taps, columns, self.out.len(), self.y, self.width);
        (count, by_source(blocks.order, [0, plane, 2 * plane]))
    }

    /// Writes the row's last block, from pixel `x` on, from the buffer `tail` of each source
    /// channel's values: as many as the row holds, into the planes that start at `planes`.
    #[inline(always)]
    pub fn last_planes(&mut self, planes: [usize; 3], x: usize, tail: &[[f32; 8]; 3]) {
        let (y, width) = (self.y, self.width);
        for (c, values) in tail.iter().enumerate() {
            write_prefix(
                &mut self.out[planes[c] + y * width + x..][..width - x],
                values,
            );
        }
    }

    /// Writes the row's last block, from pixel `x` on, from the buffer `tail` of interleaved
    /// values: as many as the row holds.
    #[inline(always)]
    pub fn last_pixels(&mut self, x: usize, tail: &[f32]) {
        let (y, width) = (self.y, self.width);
        write_prefix(
            &mut self.out[3 * (y * width + x)..][..3 * (width - x)],
            tail,
        );
    }
}

/// One block of 8 output pixels as a horizontal kernel reads it (see [`Blocks::block`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Block<'a> {
    /// The vertical pass's values.
    pub columns: *const f32,
    /// The first source column of each of the block's 8 pixels, pair by pair (see [`Blocks`]).
    pub starts: &'a [usize],
    /// The block's `32 · taps` weights: per pair and tap, the 8 lanes of [`Blocks::weights`].
    pub weights: *const f32,
    pub taps: usize,
}

impl Block<'_> {
    /// Where in `columns` the two pixels of pair `q` start reading.
    #[inline(always)]
    pub fn pair(&self, q: usize) -> (usize, usize) {
        (3 * self.starts[2 * q], 3 * self.starts[2 * q + 1])
    }
}
