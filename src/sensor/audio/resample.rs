//! Streaming sample-rate conversion of a mono signal with rubato's FFT resampler, with its delay
//! removed so that output sample `k` lines up with input time `k / rate_out`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

/// Input frames the resampler is asked to take per chunk (about 20 ms at 48 kHz); rubato rounds
/// this up to a whole number of its minimum blocks for the rate pair.
const CHUNK_FRAMES: usize = 1024;

/// Input frames per chunk: about `CHUNK_FRAMES`, a whole and even number of the rate pair's
/// minimum input blocks. With an even number of blocks both FFT sizes are even, so the
/// resampler's delay (half the FFT size on each side) is a whole number of samples on both sides
/// and dropping `output_delay` samples removes it exactly; with an odd input FFT size the output
/// would lead the input by half an input sample. `None` when a rate is 0.
fn chunk_frames(from: u32, to: u32) -> Option<usize> {
    if from == 0 || to == 0 {
        return None;
    }
    let (from, to) = (from as usize, to as usize);
    let block = from / gcd(from, to);
    let blocks = CHUNK_FRAMES.div_ceil(block);
    Some((blocks + blocks % 2) * block)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Why a resampler could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// The rate pair is not usable.
    #[error("cannot resample {from} Hz to {to} Hz: {message}")]
    Build { from: u32, to: u32, message: String },
    /// Processing a chunk failed.
    #[error("resampling failed: {0}")]
    Process(String),
}

/// Converts a continuous mono stream from one rate to another, chunk by chunk. Input is buffered
/// until a whole chunk is there (at most one chunk is held back), and the first `output_delay`
/// output samples, which precede the first input sample, are dropped.
pub struct StreamResampler {
    resampler: Fft<f32>,
    /// Input not yet resampled (less than one chunk after `process`).
    pending: Vec<f32>,
    /// Scratch output for one chunk.
    chunk_out: Vec<f32>,
    /// Output samples still to drop at the start of the stream.
    delay_left: usize,
}

impl StreamResampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let build_error = |message: String| ResampleError::Build { from, to, message };
        let chunk =
            chunk_frames(from, to).ok_or_else(|| build_error("rates must not be 0".into()))?;
        let resampler = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            chunk,
            1,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(|e| build_error(e.to_string()))?;
        let chunk_out = vec![0.0; resampler.output_frames_max()];
        let delay_left = resampler.output_delay();
        Ok(Self {
            pending: Vec::with_capacity(resampler.input_frames_max()),
            resampler,
            chunk_out,
            delay_left,
        })
    }

    /// Output samples dropped at the start of the stream to line output up with input.
    pub fn delay(&self) -> usize {
        self.resampler.output_delay()
    }

    /// Takes `input` and appends the resampled samples that are complete to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.pending.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = self.resampler.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let chunk = &self.pending[used..used + need];
            let input = InterleavedSlice::new(chunk, 1, need)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
            let capacity = self.chunk_out.len();
            let mut output = InterleavedSlice::new_mut(&mut self.chunk_out, 1, capacity)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
            let (taken, made) = self
                .resampler
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| ResampleError::Process(e.to_string()))?;
            used += taken;
            let skip = self.delay_left.min(made);
            self.delay_left -= skip;
            out.extend_from_slice(&self.chunk_out[skip..made]);
        }
        self.pending.drain(..used);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    /// A sum of sines below 8 kHz sampled at `rate`, from sample `start`.
    fn tones(rate: u32, start: usize, n: usize) -> Vec<f32> {
        (start..start + n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.4 * (TAU * 440.0 * t).sin()
                    + 0.3 * (TAU * 1_250.0 * t + 0.5).sin()
                    + 0.2 * (TAU * 3_000.0 * t + 1.0).sin()) as f32
            })
            .collect()
    }

    /// Resamples `seconds` of tones from `from` to `to` in uneven pieces and returns the output.
    fn resample_tones(from: u32, to: u32, seconds: f64) -> Vec<f32> {
        let input = tones(from, 0, (seconds * f64::from(from)) as usize);
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(777) {
            r.process(piece, &mut out).unwrap();
        }
        out
    }

    fn max_error_after(out: &[f32], rate: u32, skip: usize) -> f32 {
        let expected = tones(rate, 0, out.len());
        out.iter()
            .zip(&expected)
            .skip(skip)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn downsampled_output_lines_up_with_the_input_in_time() {
        let out = resample_tones(44_100, 16_000, 1.0);
        // All but the last partial chunk comes out.
        assert!(out.len() > 15_000, "{}", out.len());
        let error = max_error_after(&out, 16_000, 1_000);
        assert!(error < 1e-4, "max error {error}");
    }

    #[test]
    fn upsampled_output_lines_up_with_the_input_in_time() {
        let out = resample_tones(16_000, 48_000, 1.0);
        let error = max_error_after(&out, 48_000, 3_000);
        assert!(error < 1e-4, "max error {error}");
    }

    #[test]
    fn other_rate_pairs_line_up_too() {
        for (from, to) in [(48_000, 16_000), (44_100, 48_000), (22_050, 16_000)] {
            let out = resample_tones(from, to, 0.5);
            let error = max_error_after(&out, to, to as usize / 10);
            assert!(error < 1e-4, "{from} -> {to}: max error {error}");
        }
    }

    #[test]
    fn chunks_hold_an_even_number_of_minimum_blocks() {
        // 44.1 kHz -> 16 kHz: blocks of 441 in, 160 out.
        assert_eq!(chunk_frames(44_100, 16_000), Some(4 * 441));
        assert_eq!(chunk_frames(16_000, 48_000), Some(CHUNK_FRAMES));
        assert_eq!(chunk_frames(0, 16_000), None);
    }

    #[test]
    fn an_uncompensated_delay_would_be_visible() {
        // The check above is sensitive to a shift of a single output sample.
        let out = resample_tones(44_100, 16_000, 1.0);
        let expected = tones(16_000, 1, out.len());
        let shifted = out
            .iter()
            .zip(&expected)
            .skip(1_000)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(shifted > 0.05, "{shifted}");
    }

    #[test]
    fn unusable_rates_are_an_error() {
        assert!(StreamResampler::new(0, 16_000).is_err());
    }
}
