//! Antialiased bilinear resampling of an RGB window straight into the normalised input tensor.
//!
//! One output row at a time: a vertical pass sums the source rows the output row needs (only
//! the columns the window's outputs read) into one row of f32 values; a horizontal pass filters
//! that row into the output pixels, in the model's channel order; a last pass normalises them
//! and writes them into the tensor (three planes, or interleaved). The AVX2 kernels sum the rows
//! in 16-bit fixed point and fold the last pass into the horizontal one (its weights include
//! the normalising scale). Nothing is rounded to 8 bits between the passes, and the working set
//! is a few rows of the source and two short f32 rows.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::blocks::{by_taps, Blocks, OutRow, Rows, FIXED_ONE};
use super::weights::Axis;
use super::Norm;
use crate::config::Layout;
use image::RgbImage;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Weight tables and row buffers, kept from frame to frame.
#[derive(Debug)]
pub(super) struct Resampler {
    /// The kernels it runs: the fastest this machine has (tests pick others).
    kernels: Kernels,
    /// Tables for the last frame's geometry.
    plan: Option<Plan>,
    /// The vertical pass's output: the window's columns, interleaved RGB, then zero padding that
    /// the horizontal pass may read with zero weights.
    columns: Vec<f32>,
    /// The scalar horizontal pass's output: one output row, interleaved in the model's channel
    /// order.
    row: Vec<f32>,
}

/// What resampling one geometry (source size, window, output size, normalisation) takes.
#[derive(Debug)]
struct Plan {
    key: Key,
    rows: Axis,
    /// `rows`' weights in the SIMD vertical passes' fixed point.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fixed_rows: Vec<u16>,
    cols: Axis,
    /// The horizontal pass's tables as the SIMD kernels read them.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    blocks: Blocks,
}

/// Source size, window, output size and normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key {
    source: (u32, u32),
    window: [f64; 4],
    output: (u32, u32),
    norm: Norm,
}

impl Plan {
    fn new(key: Key) -> Self {
        let [left, top, w, h] = key.window;
        let (sw, sh) = key.source;
        let (ow, oh) = key.output;
        let rows = Axis::new(sh as usize, top, top + h, oh as usize, 1);
        let cols = Axis::new(sw as usize, left, left + w, ow as usize, 1);
        Plan {
            key,
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            fixed_rows: rows.fixed_point(FIXED_ONE),
            rows,
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            blocks: Blocks::new(&cols, &key.norm),
            cols,
        }
    }

    /// The fixed-point weights of the source rows output row `y` reads.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn fixed_row_weights(&self, y: usize) -> &[u16] {
        &self.fixed_rows[y * self.rows.taps..][..self.rows.lens[y]]
    }

    /// The source rows output row `y` reads.
    fn source_rows(&self, y: usize) -> Range<usize> {
        let first = self.rows.first + self.rows.starts[y];
        first..first + self.rows.of(y).len()
    }

    /// The source rows that output row `y + PREFETCH_ROWS` reads and no row before it prefetched
    /// (`fetched` is the end of those): the vertical pass of row `y` prefetches them.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn rows_ahead(&self, y: usize, fetched: &mut usize) -> Range<usize> {
        let ahead = y + PREFETCH_ROWS;
        if ahead >= self.rows.starts.len() {
            return 0..0;
        }
        let Range { start: first, end } = self.source_rows(ahead);
        let from = first.max(*fetched);
        *fetched = end.max(*fetched);
        from..end.max(from)
    }
}

/// How many output rows ahead the vertical pass prefetches source rows: at two, the lines
/// arrive well before they are read (an output row takes about a microsecond) and no more than
/// a few rows are in flight.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const PREFETCH_ROWS: usize = 2;

/// Which kernels to run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernels {
    /// On aarch64 only the tests pick these (every core has NEON).
    #[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Every aarch64 core has NEON (Advanced SIMD).
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Kernels {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernels::Avx2;
        }
        #[cfg(target_arch = "aarch64")]
        {
            Kernels::Neon
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            Kernels::Scalar
        }
    }
}

impl Default for Resampler {
    fn default() -> Self {
        Resampler {
            kernels: Kernels::detect(),
            plan: None,
            columns: Vec::new(),
            row: Vec::new(),
        }
    }
}

impl Resampler {
    /// Resamples the `[left, top, width, height]` window of `img` (inside the image, not empty)
    /// to `width × height`, normalises, and writes every value of `out` in `layout`.
    pub fn run(
        &mut self,
        img: &RgbImage,
        window: [f64; 4],
        (width, height): (u32, u32),
        norm: &Norm,
        layout: Layout,
        out: &mut [MaybeUninit<f32>],
    ) {
        let key = Key {
            source: img.dimensions(),
            window,
            output: (width, height),
            norm: *norm,
        };
        if self.plan.as_ref().is_none_or(|p| p.key != key) {
            let plan = Plan::new(key);
            self.columns.clear();
            self.columns
                .resize((plan.cols.span + plan.cols.taps) * 3 + 8, 0.0);
            self.row.clear();
            self.row.resize(3 * width as usize, 0.0);
            self.plan = Some(plan);
        }
        let Some(plan) = &self.plan else { return };
        let (width, height) = (width as usize, height as usize);
        assert_eq!(out.len(), 3 * width * height);
        let src = img.as_raw().as_slice();
        let stride = 3 * img.width() as usize;
        let x0 = 3 * plan.cols.first;
        let n = 3 * plan.cols.span;
        // Source rows up to here have been prefetched (SIMD kernels).
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let mut fetched = 0;
        for y in 0..height {
            let row0 = plan.source_rows(y).start;
            let columns = &mut self.columns[..n];
            let row = &mut self.row;
            // Row `y` through the SIMD kernels of module `$simd` (`avx2` or `neon`): the vertical
            // pass into `columns`, then the horizontal one into `out`, unrolled for the common
            // tap counts (see `by_taps`).
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            macro_rules! simd_row {
                ($simd:ident) => {{
                    let rows = Rows {
                        src,
                        stride,
                        row0,
                        weights: plan.fixed_row_weights(y),
                        x0,
                        prefetch: plan.rows_ahead(y, &mut fetched),
                    };
                    super::$simd::vertical(&rows, columns);
                    let to = OutRow {
                        out: &mut *out,
                        layout,
                        y,
                        width,
                    };
                    let horizontal = by_taps!(super::$simd::horizontal, plan.blocks.taps);
                    horizontal(&self.columns, &plan.blocks, to);
                }};
            }
            match self.kernels {
                Kernels::Scalar => {
                    vertical(src, stride, row0, plan.rows.of(y), x0, columns);
                    horizontal(&self.columns, &plan.cols, norm.order, row);
                    match layout {
                        Layout::Nchw => write_nchw(row, norm, out, y, width),
                        Layout::Nhwc => write_nhwc(row, norm, out, y, width),
                    }
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Kernels::detect` found AVX2 and FMA (tests pick these kernels only
                // where it does). The kernels check the lengths they rely on.
                Kernels::Avx2 => unsafe { simd_row!(avx2) },
                #[cfg(target_arch = "aarch64")]
                // SAFETY: every aarch64 core has NEON. The kernels check the lengths they rely
                // on.
                Kernels::Neon => unsafe { simd_row!(neon) },
            }
        }
    }
}

/// Vertical pass: `out[i] = Σ_k weights[k] · src[(row0 + k) · stride + x0 + i]`.
fn vertical(src: &[u8], stride: usize, row0: usize, weights: &[f32], x0: usize, out: &mut [f32]) {
    out.fill(0.0);
    let n = out.len();
    for (k, &w) in weights.iter().enumerate() {
        let line = &src[(row0 + k) * stride + x0..][..n];
        for (o, &v) in out.iter_mut().zip(line) {
            *o += v as f32 * w;
        }
    }
}

/// Horizontal pass: each output pixel of the row from the vertical pass's values, in the
/// model's channel order (`order[k]` is the source channel of model channel `k`).
fn horizontal(columns: &[f32], cols: &Axis, order: [usize; 3], row: &mut [f32]) {
    let width = cols.starts.len();
    for (x, px) in row[..3 * width].chunks_exact_mut(3).enumerate() {
        let from = &columns[3 * cols.starts[x]..];
        let weights = cols.of(x);
        for (k, v) in px.iter_mut().enumerate() {
            let c = order[k];
            *v = weights
                .iter()
                .enumerate()
                .fold(0.0, |acc, (j, &w)| acc + from[3 * j + c] * w);
        }
    }
}

/// Normalises output row `y` (`row`: interleaved, model channel order) into three planes.
fn write_nchw(row: &[f32], norm: &Norm, out: &mut [MaybeUninit<f32>], y: usize, width: usize) {
    let plane = out.len() / 3;
    for k in 0..3 {
        let dst = &mut out[k * plane + y * width..][..width];
        for x in 0..width {
            dst[x].write(row[3 * x + k] * norm.scale[k] + norm.bias[k]);
        }
    }
}

/// Normalises output row `y` (`row`: interleaved, model channel order) into interleaved values.
fn write_nhwc(row: &[f32], norm: &Norm, out: &mut [MaybeUninit<f32>], y: usize, width: usize) {
    let dst = &mut out[3 * width * y..][..3 * width];
    for i in 0..3 * width {
        dst[i].write(row[i] * norm.scale[i % 3] + norm.bias[i % 3]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{case_cfg, noise, reference, steps_apart, CASES, STEP_BOUND};
    use super::super::{channel_order, crop_window};
    use super::*;
    use crate::config::ChannelOrder;

    /// Runs `r` (a fresh resampler if `None`) with `kernels` on one case.
    fn run(
        kernels: Kernels,
        r: Option<&mut Resampler>,
        img: &RgbImage,
        cfg: &crate::config::ImagePreprocess,
        (w, h): (u32, u32),
    ) -> Vec<f32> {
        let order = channel_order(cfg.channel_order);
        let norm = Norm {
            order,
            scale: order.map(|c| 1.0 / (255.0 * cfg.std[c])),
            bias: order.map(|c| -cfg.mean[c] / cfg.std[c]),
        };
        let mut out = vec![MaybeUninit::new(f32::NAN); 3 * (w * h) as usize];
        let mut fresh = Resampler::default();
        let r = r.unwrap_or(&mut fresh);
        r.kernels = kernels;
        r.run(
            img,
            crop_window(img, cfg),
            (w, h),
            &norm,
            cfg.layout,
            &mut out,
        );
        // SAFETY: initialised above.
        out.iter().map(|v| unsafe { v.assume_init() }).collect()
    }

    #[test]
    fn every_kernel_set_is_within_one_step_of_fast_image_resize_and_they_agree() {
        let mut kernels = vec![Kernels::Scalar];
        if Kernels::detect() != Kernels::Scalar {
            kernels.push(Kernels::detect());
        }
        for (n, (resize, crop, w, h, sw, sh)) in CASES.into_iter().enumerate() {
            let img = noise(sw, sh, 100 + n as u32);
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                    let cfg = case_cfg(resize, crop, layout, order);
                    let size = (w as u32, h as u32);
                    let expected = reference(&img, &cfg, size.0, size.1);
                    let scalar = run(Kernels::Scalar, None, &img, &cfg, size);
                    for &k in &kernels {
                        let mut r = Resampler::default();
                        let ours = run(k, Some(&mut r), &img, &cfg, size);
                        assert!(
                            ours.iter().all(|v| v.is_finite()),
                            "{k:?}: unwritten values"
                        );
                        let steps = steps_apart(&ours, &expected, &cfg);
                        assert!(
                            steps <= STEP_BOUND,
                            "{k:?} {resize:?} {crop:?} {w}x{h} from {sw}x{sh}: {steps}"
                        );
                        // The SIMD kernels weigh the rows in fixed point (see `avx2::vertical`
                        // and `neon::vertical`) and round fused multiply-adds once where the
                        // scalar code rounds twice.
                        let taps = r.plan.as_ref().map_or(0, |p| p.rows.taps);
                        let bound = match k {
                            Kernels::Scalar => 0.0,
                            #[cfg(target_arch = "x86_64")]
                            Kernels::Avx2 => simd_bound(taps),
                            #[cfg(target_arch = "aarch64")]
                            Kernels::Neon => simd_bound(taps),
                        };
                        let diff = steps_apart(&ours, &scalar, &cfg);
                        assert!(diff <= bound, "{k:?} against scalar: {diff} steps");
                    }
                }
            }
        }
    }

    /// How far, in steps of one level, the SIMD kernels may be from the scalar ones when the
    /// row filter has `taps` taps: the AVX2 vertical pass's bound (the NEON one is within
    /// `(taps - 1) / 512`), and 0.001 for the fused multiply-adds' rounding.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn simd_bound(taps: usize) -> f32 {
        (taps / 2 + 1) as f32 / 255.0 + 1e-3
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn rows_are_prefetched_once_each_and_before_they_are_read() {
        for key in [
            // 640x480 to 256x256, centre crop 224x224.
            [80.0, 30.0, 560.0, 420.0],
            [0.0, 0.0, 640.0, 480.0],
            [0.0, 0.0, 640.0, 2.0],
        ] {
            let plan = Plan::new(Key {
                source: (640, 480),
                window: key,
                output: (224, 224),
                norm: Norm {
                    order: [0, 1, 2],
                    scale: [1.0; 3],
                    bias: [0.0; 3],
                },
            });
            let reads = |y: usize| plan.source_rows(y);
            let (mut fetched, mut seen) = (0, Vec::new());
            for y in 0..224 {
                let ahead = plan.rows_ahead(y, &mut fetched);
                assert!(ahead.end <= 480, "row {y}: {ahead:?}");
                seen.extend(ahead);
                // What row y reads was prefetched by an earlier row, or is one of the first
                // rows' own.
                if y >= PREFETCH_ROWS {
                    let first_read = reads(PREFETCH_ROWS).start;
                    for r in reads(y) {
                        assert!(r < first_read || seen.contains(&r), "row {y} reads {r}");
                    }
                }
            }
            let mut unique = seen.clone();
            unique.dedup();
            assert_eq!(unique, seen, "a row prefetched twice");
            let read: Vec<usize> = (0..224).flat_map(reads).collect();
            assert!(
                seen.iter().all(|r| read.contains(r)),
                "{seen:?}: not all read"
            );
        }
    }

    #[test]
    fn a_frame_of_another_size_gets_new_tables() {
        let cfg = case_cfg(
            Some([256, 256]),
            Some([224, 224]),
            Layout::Nhwc,
            ChannelOrder::Bgr,
        );
        let mut kept = Resampler::default();
        for (sw, sh) in [(640, 480), (320, 200), (641, 481), (640, 480)] {
            let img = noise(sw, sh, sw);
            let k = Kernels::detect();
            let ours = run(k, Some(&mut kept), &img, &cfg, (24, 16));
            assert_eq!(ours, run(k, None, &img, &cfg, (24, 16)), "{sw}x{sh}");
        }
    }
}
