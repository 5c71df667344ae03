//! Sample conversion: device sample formats to `f32` in [-1, 1], and interleaved frames to mono.

use cpal::{I24, U24};

/// A device sample that converts to `f32` in [-1, 1] without allocating (called in the audio
/// callback). Signed integers map their negative full scale to exactly -1; unsigned ones are
/// centred on their midpoint first; floats are clamped.
pub trait ToUnit: Copy {
    /// This sample as `f32` in [-1, 1].
    fn to_unit(self) -> f32;
}

impl ToUnit for i8 {
    fn to_unit(self) -> f32 {
        f32::from(self) / 128.0
    }
}

impl ToUnit for i16 {
    fn to_unit(self) -> f32 {
        f32::from(self) / 32_768.0
    }
}

impl ToUnit for I24 {
    fn to_unit(self) -> f32 {
        (self.inner() as f64 / 8_388_608.0) as f32
    }
}

impl ToUnit for i32 {
    fn to_unit(self) -> f32 {
        (f64::from(self) / 2_147_483_648.0) as f32
    }
}

impl ToUnit for u8 {
    fn to_unit(self) -> f32 {
        (f32::from(self) - 128.0) / 128.0
    }
}

impl ToUnit for u16 {
    fn to_unit(self) -> f32 {
        (f32::from(self) - 32_768.0) / 32_768.0
    }
}

impl ToUnit for U24 {
    fn to_unit(self) -> f32 {
        ((self.inner() as f64 - 8_388_608.0) / 8_388_608.0) as f32
    }
}

impl ToUnit for u32 {
    fn to_unit(self) -> f32 {
        ((f64::from(self) - 2_147_483_648.0) / 2_147_483_648.0) as f32
    }
}

impl ToUnit for f32 {
    fn to_unit(self) -> f32 {
        if self.is_nan() {
            0.0
        } else {
            self.clamp(-1.0, 1.0)
        }
    }
}

impl ToUnit for f64 {
    fn to_unit(self) -> f32 {
        (self as f32).to_unit()
    }
}

/// Appends the mono mix (the mean of the channels) of the whole frames in `interleaved` to `out`
/// and returns how many samples of `interleaved` it used; a trailing partial frame is left for
/// the caller to keep.
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) -> usize {
    let channels = channels.max(1);
    let frames = interleaved.len() / channels;
    let used = frames * channels;
    if channels == 1 {
        out.extend_from_slice(&interleaved[..used]);
    } else {
        let scale = 1.0 / channels as f32;
        out.extend(
            interleaved[..used]
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_map_full_scale_to_unit_range() {
        assert_eq!(i16::MIN.to_unit(), -1.0);
        assert_eq!(0i16.to_unit(), 0.0);
        assert_eq!(16_384i16.to_unit(), 0.5);
        assert_eq!(i16::MAX.to_unit(), 32_767.0 / 32_768.0);
        assert_eq!(i32::MIN.to_unit(), -1.0);
        assert_eq!((1i32 << 30).to_unit(), 0.5);
        assert_eq!(i8::MIN.to_unit(), -1.0);
        assert_eq!(0u8.to_unit(), -1.0);
        assert_eq!(128u8.to_unit(), 0.0);
        assert_eq!(192u8.to_unit(), 0.5);
        assert_eq!(255u8.to_unit(), 127.0 / 128.0);
        assert_eq!(0u16.to_unit(), -1.0);
        assert_eq!(32_768u16.to_unit(), 0.0);
        assert_eq!(0u32.to_unit(), -1.0);
        assert_eq!((3u32 << 30).to_unit(), 0.5);
        assert_eq!(I24::new(-(1 << 23)).map(ToUnit::to_unit), Some(-1.0));
        assert_eq!(I24::new(1 << 22).map(ToUnit::to_unit), Some(0.5));
        assert_eq!(U24::new(1 << 23).map(ToUnit::to_unit), Some(0.0));
    }

    #[test]
    fn a_16_bit_sample_widened_to_32_bits_converts_to_the_same_value() {
        for v in [i16::MIN, -12_345, -1, 0, 1, 23_456, i16::MAX] {
            assert_eq!((i32::from(v) << 16).to_unit(), v.to_unit());
        }
    }

    #[test]
    fn floats_are_clamped_and_nan_is_silence() {
        assert_eq!(0.25f32.to_unit(), 0.25);
        assert_eq!(1.5f32.to_unit(), 1.0);
        assert_eq!((-3.0f64).to_unit(), -1.0);
        assert_eq!(f32::NAN.to_unit(), 0.0);
    }

    #[test]
    fn downmix_averages_channels_and_leaves_a_partial_frame() {
        let mut out = Vec::new();
        let used = downmix(&[1.0, 0.0, 0.5, -0.5, 0.25], 2, &mut out);
        assert_eq!(used, 4);
        assert_eq!(out, vec![0.5, 0.0]);

        let mut out = vec![9.0];
        assert_eq!(downmix(&[0.1, 0.2, 0.3], 1, &mut out), 3);
        assert_eq!(out, vec![9.0, 0.1, 0.2, 0.3]);

        let mut out = Vec::new();
        assert_eq!(downmix(&[0.3, 0.6, 0.9, 0.0, 0.0, 0.3], 3, &mut out), 6);
        assert!((out[0] - 0.6).abs() < 1e-7 && (out[1] - 0.1).abs() < 1e-7);
    }
}
