//! Filter weights of antialiased bilinear resampling along one axis.

/// For each output index along one axis: the source indices it reads and their weights.
///
/// The filter is the triangle `max(0, 1 - |d|)`, widened by the downscale factor when shrinking
/// (so that every source pixel contributes: antialiasing), and the weights of each output are
/// normalised to sum to 1. Placement and trimming follow `fast_image_resize` and Pillow's
/// "bilinear" (output `o` is centred on source coordinate `in0 + (o + 0.5) * scale`), so a window
/// with a fractional edge is resampled as they would.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Axis {
    /// First source index read by any output.
    pub first: usize,
    /// How many source indices from `first` on the outputs read.
    pub span: usize,
    /// Weights stored per output: the largest count any output uses, rounded up to a multiple of
    /// the `pad_to` given to [`Axis::new`]; the slots an output does not use hold 0.
    pub taps: usize,
    /// Per output: the first source index read, relative to `first`.
    pub starts: Vec<usize>,
    /// Per output: how many of its `taps` slots it uses.
    pub lens: Vec<usize>,
    /// `taps` weights per output.
    pub weights: Vec<f32>,
}

impl Axis {
    /// Weights for resampling the window `in0 .. in1` of `0 .. in_size` to `out_size` samples.
    ///
    /// `in_size` and `out_size` must be non-zero and the window must lie in `0 .. in_size`
    /// with `in0 < in1`.
    pub fn new(in_size: usize, in0: f64, in1: f64, out_size: usize, pad_to: usize) -> Self {
        assert!(in_size > 0 && out_size > 0 && in0 < in1 && pad_to > 0);
        let scale = (in1 - in0) / out_size as f64;
        let filter_scale = scale.max(1.0);
        // The triangle's support (1) widened by the downscale factor.
        let radius = filter_scale;
        let recip = 1.0 / filter_scale;
        let mut per_output: Vec<(usize, Vec<f64>)> = Vec::with_capacity(out_size);
        for o in 0..out_size {
            let centre = in0 + (o as f64 + 0.5) * scale;
            let lo = (centre - radius).floor().max(0.0) as usize;
            let hi = ((centre + radius).ceil().min(in_size as f64) as usize).max(lo);
            // Source pixel `x` covers `x .. x + 1`; its distance from the centre is
            // `x + 0.5 - centre`.
            let centre = centre - 0.5;
            let mut start = lo;
            let mut weights = Vec::with_capacity(hi - lo);
            for x in lo..hi {
                let d = ((x as f64 - centre) * recip).abs();
                let w = if d < 1.0 { 1.0 - d } else { 0.0 };
                if x == start && w == 0.0 {
                    start += 1;
                } else {
                    weights.push(w);
                }
            }
            while weights.last() == Some(&0.0) {
                weights.pop();
            }
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            } else {
                // Cannot happen for a window inside the source (some pixel lies within the
                // support); should it, the output takes the nearest pixel.
                start = (centre.round().max(0.0) as usize).min(in_size - 1);
                weights = vec![1.0];
            }
            per_output.push((start, weights));
        }
        let first = per_output.iter().map(|(s, _)| *s).min().unwrap_or(0);
        let last = per_output
            .iter()
            .map(|(s, w)| s + w.len())
            .max()
            .unwrap_or(first);
        let longest = per_output.iter().map(|(_, w)| w.len()).max().unwrap_or(1);
        let taps = longest.div_ceil(pad_to) * pad_to;
        let mut axis = Axis {
            first,
            span: last - first,
            taps,
            starts: Vec::with_capacity(out_size),
            lens: Vec::with_capacity(out_size),
            weights: vec![0.0; taps * out_size],
        };
        for (o, (start, weights)) in per_output.into_iter().enumerate() {
            axis.starts.push(start - first);
            axis.lens.push(weights.len());
            for (slot, w) in axis.weights[o * taps..].iter_mut().zip(weights) {
                *slot = w as f32;
            }
        }
        axis
    }

    /// The weights output `o` uses (without the padding).
    pub fn of(&self, o: usize) -> &[f32] {
        &self.weights[o * self.taps..][..self.lens[o]]
    }

    /// The weights as integers that sum to `one` for each output, laid out as `weights`.
    ///
    /// Each output's running sum is rounded, not each weight: a weight is off by less than one
    /// unit, and the errors do not add up along the filter.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", test))]
    pub fn fixed_point(&self, one: u16) -> Vec<u16> {
        let mut fixed = vec![0; self.weights.len()];
        for (o, (slots, weights)) in fixed
            .chunks_exact_mut(self.taps.max(1))
            .zip(self.weights.chunks_exact(self.taps.max(1)))
            .enumerate()
        {
            let total: f64 = weights[..self.lens[o]].iter().map(|&w| f64::from(w)).sum();
            let (mut sum, mut placed) = (0.0, 0u32);
            for (slot, &w) in slots.iter_mut().zip(&weights[..self.lens[o]]) {
                sum += f64::from(w);
                let to = (sum / total * f64::from(one)).round() as u32;
                *slot = (to - placed) as u16;
                placed = to;
            }
        }
        fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_stay_inside_the_window_reach() {
        for (in_size, in0, in1, out) in [
            (640, 40.0, 600.0, 224),
            (480, 30.0, 450.0, 224),
            (640, 0.0, 640.0, 320),
            (17, 0.0, 17.0, 40),
            (100, 12.5, 77.25, 13),
            (1, 0.0, 1.0, 5),
        ] {
            for pad_to in [1, 2] {
                let a = Axis::new(in_size, in0, in1, out, pad_to);
                assert_eq!(a.taps % pad_to, 0);
                assert!(a.first + a.span <= in_size);
                for o in 0..out {
                    let sum: f32 = a.of(o).iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{o}: {sum}");
                    assert!(a.starts[o] + a.lens[o] <= a.span);
                    assert!(a.weights[o * a.taps + a.lens[o]..(o + 1) * a.taps]
                        .iter()
                        .all(|&w| w == 0.0));
                }
            }
        }
    }

    #[test]
    fn fixed_point_weights_sum_to_one_unit_each_within_one_of_the_exact_weight() {
        for (in_size, in0, in1, out) in [
            (480, 30.0, 450.0, 224),
            (17, 0.0, 17.0, 40),
            (4000, 0.0, 4000.0, 3),
            (1, 0.0, 1.0, 5),
        ] {
            let a = Axis::new(in_size, in0, in1, out, 1);
            let one = 255 * 256;
            let fixed = a.fixed_point(one);
            for o in 0..out {
                let f = &fixed[o * a.taps..][..a.lens[o]];
                assert_eq!(f.iter().map(|&w| u32::from(w)).sum::<u32>(), u32::from(one));
                for (&w, &e) in f.iter().zip(a.of(o)) {
                    assert!((f64::from(w) - f64::from(e) * f64::from(one)).abs() < 1.0);
                }
            }
        }
    }

    #[test]
    fn same_size_is_the_identity_and_halving_averages_pairs() {
        let a = Axis::new(6, 0.0, 6.0, 6, 1);
        assert_eq!((a.first, a.span, a.taps), (0, 6, 1));
        assert_eq!(a.starts, [0, 1, 2, 3, 4, 5]);
        assert!(a.weights.iter().all(|&w| w == 1.0));

        // Scale 2: the triangle spans 4 source pixels, weighted 1/8, 3/8, 3/8, 1/8.
        let a = Axis::new(8, 0.0, 8.0, 4, 1);
        assert_eq!(a.of(1), [0.125, 0.375, 0.375, 0.125]);
        assert_eq!(a.starts[1], 1);
        // At the edge the part of the triangle outside the image is dropped and the rest
        // renormalised: 3/4, 3/4, 1/4 over 7/4.
        let expected = [3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0];
        assert_eq!(a.starts[0], 0);
        assert!(a
            .of(0)
            .iter()
            .zip(expected)
            .all(|(w, e)| (w - e).abs() < 1e-7));
    }
}
