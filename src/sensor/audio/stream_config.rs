//! What the audio source asks of an input, and choosing the input's stream config for it: channels
//! and sample format as hard constraints, the model's rate when offered, else the device's default
//! or the closest rate.

use cpal::{BufferSize, SampleFormat, StreamConfig, SupportedStreamConfigRange};

/// What to open.
#[derive(Debug, Clone)]
pub struct Request {
    /// Device name or id; the default input when `None`.
    pub device: Option<String>,
    /// Rate wanted from the device.
    pub rate: u32,
    /// Whether `rate` is a must (`device_rate` set) or a preference (`sample_rate`).
    pub rate_required: bool,
    /// Channels wanted; any when `None`.
    pub channels: Option<u16>,
    /// Ring capacity in milliseconds of audio.
    pub buffer_ms: u32,
}

/// Picks the stream config for `request` among the device's `ranges`.
///
/// With the channel count (when given) and a supported sample format as hard constraints: a range
/// that offers the requested rate, the best one by cpal's default ordering (stereo, then mono,
/// then wider formats); otherwise, unless the rate is required, the device's default config when
/// it fits, else the range whose rate comes closest. The caller resamples when the rate differs.
pub fn choose_config(
    ranges: &[SupportedStreamConfigRange],
    default: Option<&cpal::SupportedStreamConfig>,
    request: &Request,
) -> Result<(StreamConfig, SampleFormat), String> {
    let usable: Vec<&SupportedStreamConfigRange> = ranges
        .iter()
        .filter(|r| is_supported(r.sample_format()))
        .filter(|r| request.channels.is_none_or(|c| r.channels() == c))
        .collect();
    let config = |channels, sample_rate| StreamConfig {
        channels,
        sample_rate,
        buffer_size: BufferSize::Default,
    };
    if let Some(best) = usable
        .iter()
        .filter(|r| r.contains_rate(request.rate))
        .max_by(|a, b| a.cmp_default_heuristics(b))
    {
        return Ok((config(best.channels(), request.rate), best.sample_format()));
    }
    let offered = describe(ranges);
    if request.rate_required {
        return Err(format!(
            "does not offer {} Hz{}; it offers {offered}",
            request.rate,
            channels_text(request.channels)
        ));
    }
    if let Some(d) = default {
        if is_supported(d.sample_format()) && request.channels.is_none_or(|c| d.channels() == c) {
            return Ok((config(d.channels(), d.sample_rate()), d.sample_format()));
        }
    }
    let distance = |r: &SupportedStreamConfigRange| {
        let rate = request.rate.clamp(r.min_sample_rate(), r.max_sample_rate());
        (rate.abs_diff(request.rate), rate)
    };
    usable
        .iter()
        .min_by(|a, b| {
            distance(a)
                .0
                .cmp(&distance(b).0)
                .then_with(|| b.cmp_default_heuristics(a))
        })
        .map(|r| (config(r.channels(), distance(r).1), r.sample_format()))
        .ok_or_else(|| {
            format!(
                "offers no usable input config{}; it offers {offered}",
                channels_text(request.channels)
            )
        })
}

fn channels_text(channels: Option<u16>) -> String {
    channels
        .map(|c| format!(" with {c} channel(s)"))
        .unwrap_or_default()
}

fn describe(ranges: &[SupportedStreamConfigRange]) -> String {
    if ranges.is_empty() {
        return "nothing".into();
    }
    let shown: Vec<String> = ranges
        .iter()
        .take(8)
        .map(|r| {
            format!(
                "{}ch {} {}-{} Hz",
                r.channels(),
                r.sample_format(),
                r.min_sample_rate(),
                r.max_sample_rate()
            )
        })
        .collect();
    let more = ranges.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn is_supported(format: SampleFormat) -> bool {
    matches!(
        format,
        SampleFormat::I8
            | SampleFormat::I16
            | SampleFormat::I24
            | SampleFormat::I32
            | SampleFormat::U8
            | SampleFormat::U16
            | SampleFormat::U24
            | SampleFormat::U32
            | SampleFormat::F32
            | SampleFormat::F64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    fn range(
        channels: u16,
        min: u32,
        max: u32,
        format: SampleFormat,
    ) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(channels, min, max, SupportedBufferSize::Unknown, format)
    }

    fn request(rate: u32, required: bool, channels: Option<u16>) -> Request {
        Request {
            device: None,
            rate,
            rate_required: required,
            channels,
            buffer_ms: 100,
        }
    }

    #[test]
    fn the_requested_rate_is_taken_when_offered() {
        let ranges = [
            range(2, 44_100, 44_100, SampleFormat::I16),
            range(1, 8_000, 48_000, SampleFormat::I16),
            range(1, 8_000, 48_000, SampleFormat::F32),
        ];
        let (config, format) = choose_config(&ranges, None, &request(16_000, false, None)).unwrap();
        assert_eq!((config.channels, config.sample_rate), (1, 16_000));
        assert_eq!(format, SampleFormat::F32);
    }

    #[test]
    fn channels_are_a_hard_constraint() {
        let ranges = [
            range(1, 8_000, 48_000, SampleFormat::F32),
            range(2, 44_100, 44_100, SampleFormat::I16),
        ];
        let (config, format) =
            choose_config(&ranges, None, &request(16_000, false, Some(2))).unwrap();
        assert_eq!((config.channels, config.sample_rate), (2, 44_100));
        assert_eq!(format, SampleFormat::I16);
        let err = choose_config(&ranges, None, &request(16_000, false, Some(4))).unwrap_err();
        assert!(err.contains("4 channel"), "{err}");
    }

    #[test]
    fn the_default_config_is_used_when_the_rate_is_not_offered() {
        let ranges = [
            range(2, 48_000, 48_000, SampleFormat::I32),
            range(2, 44_100, 44_100, SampleFormat::I16),
        ];
        let default = range(2, 48_000, 48_000, SampleFormat::I32).with_sample_rate(48_000);
        let (config, format) =
            choose_config(&ranges, Some(&default), &request(16_000, false, None)).unwrap();
        assert_eq!(config.sample_rate, 48_000);
        assert_eq!(format, SampleFormat::I32);
        // Without a default, the closest rate.
        let (config, _) = choose_config(&ranges, None, &request(16_000, false, None)).unwrap();
        assert_eq!(config.sample_rate, 44_100);
    }

    #[test]
    fn a_required_rate_that_is_not_offered_is_an_error() {
        let ranges = [range(1, 44_100, 44_100, SampleFormat::I16)];
        let err = choose_config(&ranges, None, &request(48_000, true, None)).unwrap_err();
        assert!(
            err.contains("48000 Hz") && err.contains("1ch i16 44100-44100 Hz"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_formats_are_skipped() {
        let ranges = [
            range(1, 16_000, 16_000, SampleFormat::DsdU8),
            range(1, 16_000, 16_000, SampleFormat::U8),
        ];
        let (_, format) = choose_config(&ranges, None, &request(16_000, false, None)).unwrap();
        assert_eq!(format, SampleFormat::U8);
        let err = choose_config(&ranges[..1], None, &request(16_000, false, None)).unwrap_err();
        assert!(err.contains("no usable"), "{err}");
    }
}
