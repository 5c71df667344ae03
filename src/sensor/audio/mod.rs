//! `audio` sensors: audio inputs through cpal (ALSA), cut into sliding mono windows at the
//! model's sample rate.
//!
//! The device's callback converts samples to `f32` and pushes them into a bounded ring (full:
//! the new samples are dropped and counted as overruns). The sensor thread drains the ring,
//! averages the channels to mono, resamples to `sample_rate` when the device runs at another
//! rate, and cuts windows with a [`Windower`].

mod convert;
mod device;
mod resample;
mod stream_config;
mod xrun;

pub use device::DeviceError;
pub use resample::ResampleError;

use super::{FrameSource, Next, SensorError, Windower};
use crate::config::AudioConfig;
use crate::frame::Payload;
use device::CaptureStream;
use resample::StreamResampler;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use stream_config::Request;
use tracing::{info, warn};

/// Longest `next_payload` waits for samples before returning `Next::Idle`.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Pause between two looks at an empty ring.
const POLL: Duration = Duration::from_millis(5);
/// Most interleaved samples taken from the ring at once, bounding the mono backlog held here.
const READ_MAX: usize = 8192;

/// An audio input, opened by the capture loop and reopened when it goes away.
pub struct AudioSource {
    config: AudioConfig,
    live: Option<Live>,
    windower: Windower,
    /// Overruns of streams already closed, not yet reported.
    dropped: u64,
}

/// An open stream and the conversion state that belongs to it.
struct Live {
    stream: CaptureStream,
    resampler: Option<StreamResampler>,
    /// Interleaved samples read from the ring, not yet mixed down (at most a partial frame).
    interleaved: Vec<f32>,
    /// Mono samples at the device rate, not yet resampled (reused scratch).
    mono: Vec<f32>,
    /// Mono samples at `sample_rate`, not yet fed to the windower (at most `READ_MAX` worth).
    ready: VecDeque<f32>,
}

impl AudioSource {
    /// An audio source; the device is opened by `connect`.
    pub fn new(config: AudioConfig) -> Self {
        let windower = Windower::new(config.window, config.hop);
        Self {
            config,
            live: None,
            windower,
            dropped: 0,
        }
    }

    fn close(&mut self) {
        if let Some(live) = self.live.take() {
            self.dropped += live.stream.take_dropped();
        }
    }

    fn payload(&self, samples: Vec<f32>) -> Next {
        Next::frame(Payload::Audio {
            sample_rate: self.config.sample_rate,
            samples,
        })
    }
}

impl Live {
    /// Moves what the ring holds (up to `READ_MAX` samples) into `ready`; false if it was empty.
    fn pull(&mut self) -> Result<bool, SensorError> {
        if self.stream.read(&mut self.interleaved, READ_MAX) == 0 {
            return Ok(false);
        }
        let channels = usize::from(self.stream.opened.channels);
        self.mono.clear();
        let used = convert::downmix(&self.interleaved, channels, &mut self.mono);
        self.interleaved.drain(..used);
        match &mut self.resampler {
            Some(resampler) => {
                let mut out = Vec::with_capacity(self.mono.len());
                resampler
                    .process(&self.mono, &mut out)
                    .map_err(|e| SensorError::Lost(e.to_string()))?;
                self.ready.extend(out);
            }
            None => self.ready.extend(self.mono.iter().copied()),
        }
        Ok(true)
    }
}

impl FrameSource for AudioSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        self.close();
        self.windower.reset();
        let request = Request {
            device: self.config.device.clone(),
            rate: self.config.device_rate.unwrap_or(self.config.sample_rate),
            rate_required: self.config.device_rate.is_some(),
            channels: self.config.channels,
            buffer_ms: self.config.buffer_ms,
        };
        let stream = CaptureStream::open(request).map_err(|e| SensorError::Lost(e.to_string()))?;
        let opened = stream.opened.clone();
        let resampler = if opened.rate == self.config.sample_rate {
            None
        } else {
            let r = StreamResampler::new(opened.rate, self.config.sample_rate)
                .map_err(|e| SensorError::Lost(e.to_string()))?;
            Some(r)
        };
        info!(
            device = %opened.device,
            rate = opened.rate,
            channels = opened.channels,
            format = %opened.format,
            resampled_to = resampler.as_ref().map(|_| self.config.sample_rate),
            resampler_delay = resampler.as_ref().map(StreamResampler::delay),
            "Audio input opened"
        );
        self.live = Some(Live {
            stream,
            resampler,
            interleaved: Vec::new(),
            mono: Vec::new(),
            ready: VecDeque::new(),
        });
        Ok(())
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let Some(live) = self.live.as_mut() else {
                return Err(SensorError::Lost("audio input is not open".into()));
            };
            while let Some(sample) = live.ready.pop_front() {
                if let Some(window) = self.windower.push(sample) {
                    return Ok(self.payload(window));
                }
            }
            let xruns = live.stream.take_xruns();
            if xruns > 0 {
                // Recovered in place by the stream; the lost frames are counted as overruns.
                warn!(
                    device = %live.stream.opened.device,
                    xruns,
                    "Audio input overran; samples lost, capture goes on"
                );
            }
            if let Some(error) = live.stream.failure() {
                let device = live.stream.opened.device.clone();
                self.close();
                return Err(SensorError::Lost(format!("{device}: {error}")));
            }
            let pulled = live.pull();
            match pulled {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.close();
                    return Err(e);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Next::Idle);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// A live input has no beginning to go back to; nothing to do.
    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }

    fn take_overruns(&mut self) -> u64 {
        let live = self.live.as_ref().map_or(0, |l| l.stream.take_dropped());
        std::mem::take(&mut self.dropped) + live
    }
}
