//! WAV replay: sliding mono windows of `window` samples every `hop` samples, streamed from the file.

use crate::frame::Payload;
use crate::sensor::{FrameSource, Next, SensorError, Windower};
use hound::{SampleFormat, WavReader};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Replays a WAV file as windows.
pub struct WavReplay {
    path: PathBuf,
    reader: WavReader<BufReader<File>>,
    sample_rate: u32,
    windows: Windower,
}

impl WavReplay {
    /// Opens the file and checks its format.
    pub fn open(path: &Path, window: usize, hop: usize) -> Result<Self, SensorError> {
        let reader = Self::reader(path)?;
        let sample_rate = reader.spec().sample_rate;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            sample_rate,
            windows: Windower::new(window, hop),
        })
    }

    fn reader(path: &Path) -> Result<WavReader<BufReader<File>>, SensorError> {
        let reader = WavReader::open(path).map_err(|e| SensorError::Open {
            path: path.to_path_buf(),
            message: format!("not a readable WAV file: {e}"),
        })?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(SensorError::Open {
                path: path.to_path_buf(),
                message: "WAV header declares no channels or no sample rate".into(),
            });
        }
        Ok(reader)
    }

    /// Sample rate of the file.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Reads one mono sample (channels averaged); `None` at the end.
    fn next_mono(&mut self) -> Result<Option<f32>, SensorError> {
        let spec = self.reader.spec();
        let channels = spec.channels as usize;
        let mut sum = 0f32;
        for c in 0..channels {
            let sample = match spec.sample_format {
                SampleFormat::Float => self.reader.samples::<f32>().next(),
                SampleFormat::Int => {
                    let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
                    self.reader
                        .samples::<i32>()
                        .next()
                        .map(|r| r.map(|v| v as f32 * scale))
                }
            };
            match sample {
                None if c == 0 => return Ok(None),
                None => return Ok(None), // a partial last frame is dropped
                Some(Err(e)) => {
                    return Err(SensorError::Open {
                        path: self.path.clone(),
                        message: format!("cannot read samples: {e}"),
                    })
                }
                Some(Ok(v)) => sum += v,
            }
        }
        Ok(Some(sum / channels as f32))
    }
}

impl FrameSource for WavReplay {
    fn next_payload(&mut self) -> Result<Next, SensorError> {
        while let Some(v) = self.next_mono()? {
            if let Some(samples) = self.windows.push(v) {
                return Ok(Next::frame(Payload::Audio {
                    sample_rate: self.sample_rate,
                    samples,
                }));
            }
        }
        Ok(Next::End)
    }

    fn rewind(&mut self) -> Result<(), SensorError> {
        self.reader = Self::reader(&self.path)?;
        self.windows.reset();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, channels: u16, frames: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in frames {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    fn windows(r: &mut WavReplay) -> Vec<Vec<f32>> {
        std::iter::from_fn(|| match r.next_payload().unwrap() {
            Next::Frame {
                payload: Payload::Audio { samples, .. },
                ..
            } => Some(samples),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn overlapping_windows_of_a_stereo_file_are_mono_averages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        // Stereo frames (L, R) = (k * 4096, 0): mono = k * 4096 / 2 / 32768 = k * 0.0625.
        let frames: Vec<i16> = (0..6).flat_map(|k| [k * 4096, 0]).collect();
        write_wav(&p, 2, &frames);
        let mut r = WavReplay::open(&p, 4, 2).unwrap();
        let w = windows(&mut r);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].len(), 4);
        assert_eq!(w[1][..2], w[0][2..]);
        assert!((w[0][1] - 0.0625).abs() < 1e-6, "{:?}", w[0]);
        r.rewind().unwrap();
        assert_eq!(windows(&mut r), w);
    }

    #[test]
    fn hop_larger_than_window_skips_samples_and_a_bad_file_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let frames: Vec<i16> = (0..10).map(|k| k * 1000).collect();
        write_wav(&p, 1, &frames);
        let mut r = WavReplay::open(&p, 2, 4).unwrap();
        let w = windows(&mut r);
        let scale = 1.0 / 32768.0;
        assert_eq!(w.len(), 3);
        assert_eq!(w[1], vec![4000.0 * scale, 5000.0 * scale]);
        std::fs::write(&p, b"RIFFnope").unwrap();
        assert!(matches!(
            WavReplay::open(&p, 2, 4),
            Err(SensorError::Open { .. })
        ));
    }
}
