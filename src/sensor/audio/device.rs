//! The cpal side: finding the input device, choosing its stream config, and a capture stream
//! whose callback converts samples to `f32` and pushes them into a bounded ring.
//!
//! cpal streams are not `Send` on every platform, so each stream lives on a small thread of its
//! own that builds it, plays it and drops it when the `CaptureStream` handle is dropped.

use super::convert::ToUnit;
use super::stream_config::{choose_config, Request};
use super::xrun::CaptureClock;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{Device, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest wait for a device to open before giving up on this attempt.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an audio input could not be opened or went away.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No input device has the configured name.
    #[error("no audio input named {name:?}; available inputs: {}", list(available))]
    NotFound {
        name: String,
        available: Vec<String>,
    },
    /// No name was configured and the host has no default input.
    #[error("no default audio input; available inputs: {}", list(available))]
    NoDefault { available: Vec<String> },
    /// The device offers nothing usable for the request.
    #[error("{device}: {message}")]
    Config { device: String, message: String },
    /// cpal failed (enumerating, opening, starting or running the stream).
    #[error("{device}: {message}")]
    Stream { device: String, message: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The stream that was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The device's id (for ALSA its PCM name).
    pub device: String,
    /// Frames per second delivered.
    pub rate: u32,
    /// Interleaved channels per frame.
    pub channels: u16,
    /// Sample format on the wire.
    pub format: SampleFormat,
}

/// A playing input stream. Samples come out of `ring` interleaved, in whole frames. Dropping
/// this stops and closes the device.
pub struct CaptureStream {
    /// What was opened.
    pub opened: Opened,
    ring: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
    stop: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// State the callbacks share with the sensor thread.
#[derive(Default)]
struct Shared {
    /// Frames lost before they reached the sensor: the ring was full, or the device's buffer
    /// overflowed (an xrun).
    dropped: AtomicU64,
    /// Set by the error callback on an xrun, taken by the next data callback.
    xrun: AtomicBool,
    /// Xruns since the last call of `take_xruns`.
    xruns: AtomicU64,
    /// Set by the error callback: the stream is dead.
    failed: AtomicBool,
    /// The error callback's message.
    error: Mutex<Option<String>>,
}

impl CaptureStream {
    /// Opens the device `request` names and starts capturing.
    pub fn open(request: Request) -> Result<Self, DeviceError> {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        // Never sent on: dropping the sender is the signal.
        let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
        let thread_shared = Arc::clone(&shared);
        let label = request.device.clone().unwrap_or_else(|| "default".into());
        let thread = std::thread::Builder::new()
            .name("audio-stream".into())
            .spawn(move || {
                let stream = match start(&request, thread_shared) {
                    Ok((stream, opened, ring)) => {
                        if ready_tx.send(Ok((opened, ring))).is_err() {
                            return;
                        }
                        stream
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Until the handle is dropped (the sender goes away).
                let _ = stop_rx.recv();
                drop(stream);
            })
            .map_err(|e| DeviceError::Stream {
                device: label.clone(),
                message: format!("cannot start the stream thread: {e}"),
            })?;
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok((opened, ring))) => Ok(Self {
                opened,
                ring,
                shared,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread is stuck in the driver: leave it; it ends once the driver returns.
            Err(_) => Err(DeviceError::Stream {
                device: label,
                message: format!("did not open within {OPEN_TIMEOUT:?}"),
            }),
        }
    }

    /// Appends up to `max` available samples (whole frames) to `out`; returns how many.
    pub fn read(&mut self, out: &mut Vec<f32>, max: usize) -> usize {
        let channels = usize::from(self.opened.channels.max(1));
        let n = self.ring.slots().min(max) / channels * channels;
        if n == 0 {
            return 0;
        }
        match self.ring.read_chunk(n) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                out.extend_from_slice(a);
                out.extend_from_slice(b);
                chunk.commit_all();
                n
            }
            Err(_) => 0,
        }
    }

    /// Frames lost (the ring was full, or an xrun), since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.shared.dropped.swap(0, Ordering::Relaxed)
    }

    /// Xruns the stream recovered from, since the last call.
    pub fn take_xruns(&self) -> u64 {
        self.shared.xruns.swap(0, Ordering::Relaxed)
    }

    /// The stream's error, once cpal has reported one it cannot go on from (the device went
    /// away). Xruns are not failures: cpal restarts the stream, and the loss is counted.
    pub fn failure(&self) -> Option<String> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return None;
        }
        let message = self
            .shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Some(message.unwrap_or_else(|| "stream failed".into()))
    }
}

impl Drop for CaptureStream {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Started = (cpal::Stream, Opened, rtrb::Consumer<f32>);

/// Runs on the stream thread: finds the device, picks a config, builds and plays the stream.
fn start(request: &Request, shared: Arc<Shared>) -> Result<Started, DeviceError> {
    let host = cpal::default_host();
    let device = find_device(&host, request.device.as_deref())?;
    let id = device_id(&device);
    let stream_error = |message: String| DeviceError::Stream {
        device: id.clone(),
        message,
    };
    let ranges: Vec<SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| stream_error(format!("cannot list its configs: {e}")))?
        .collect();
    let default = device.default_input_config().ok();
    let (config, format) =
        choose_config(&ranges, default.as_ref(), request).map_err(|message| {
            DeviceError::Config {
                device: id.clone(),
                message,
            }
        })?;
    let channels = usize::from(config.channels.max(1));
    let capacity = (u64::from(request.buffer_ms) * u64::from(config.sample_rate) / 1000)
        .max(1)
        .saturating_mul(channels as u64);
    let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let stream = match format {
        SampleFormat::I8 => build::<i8>(&device, config, producer, shared),
        SampleFormat::I16 => build::<i16>(&device, config, producer, shared),
        SampleFormat::I24 => build::<cpal::I24>(&device, config, producer, shared),
        SampleFormat::I32 => build::<i32>(&device, config, producer, shared),
        SampleFormat::U8 => build::<u8>(&device, config, producer, shared),
        SampleFormat::U16 => build::<u16>(&device, config, producer, shared),
        SampleFormat::U24 => build::<cpal::U24>(&device, config, producer, shared),
        SampleFormat::U32 => build::<u32>(&device, config, producer, shared),
        SampleFormat::F32 => build::<f32>(&device, config, producer, shared),
        SampleFormat::F64 => build::<f64>(&device, config, producer, shared),
        other => {
            return Err(DeviceError::Config {
                device: id,
                message: format!("sample format {other} is not supported"),
            })
        }
    }
    .map_err(|e| stream_error(format!("cannot open the stream: {e}")))?;
    stream
        .play()
        .map_err(|e| stream_error(format!("cannot start the stream: {e}")))?;
    let opened = Opened {
        device: id,
        rate: config.sample_rate,
        channels: config.channels,
        format,
    };
    Ok((stream, opened, consumer))
}

/// Builds the input stream. The data callback neither blocks nor allocates: it converts the
/// whole frames that fit into the ring and counts the frames that do not (dropped: newest first),
/// and after an xrun the frames the device lost (see [`CaptureClock`]).
fn build<T: SizedSample + ToUnit + Send + 'static>(
    device: &Device,
    config: StreamConfig,
    mut producer: rtrb::Producer<f32>,
    shared: Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error> {
    let channels = usize::from(config.channels.max(1));
    let on_error = Arc::clone(&shared);
    let mut clock = CaptureClock::new(config.sample_rate);
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            let frames = data.len() / channels;
            let after_xrun = shared.xrun.swap(false, Ordering::AcqRel);
            let lost = clock.advance(info.timestamp().capture, frames, after_xrun);
            if lost > 0 {
                shared.dropped.fetch_add(lost, Ordering::Relaxed);
            }
            let fit = frames.min(producer.slots() / channels);
            if fit > 0 {
                if let Ok(chunk) = producer.write_chunk_uninit(fit * channels) {
                    chunk.fill_from_iter(data.iter().map(|s| s.to_unit()));
                }
            }
            if fit < frames {
                shared
                    .dropped
                    .fetch_add((frames - fit) as u64, Ordering::Relaxed);
            }
        },
        move |error: cpal::Error| {
            if error.kind() == cpal::ErrorKind::Xrun {
                on_error.xruns.fetch_add(1, Ordering::Relaxed);
                on_error.xrun.store(true, Ordering::Release);
                return;
            }
            *on_error.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
            on_error.failed.store(true, Ordering::Release);
        },
        None,
    )
}

/// The device's id (for ALSA its PCM name), or its display name when it has none.
fn device_id(device: &Device) -> String {
    device
        .id()
        .map(|id| id.id().to_string())
        .unwrap_or_else(|_| device.to_string())
}

/// How a device is listed in errors: its id, and its description when that differs.
fn device_label(device: &Device) -> String {
    let id = device_id(device);
    match device.description() {
        Ok(d) if d.name() != id => format!("{id} ({})", d.name()),
        _ => id,
    }
}

/// The input device with this id or description name, or the default input.
fn find_device(host: &cpal::Host, name: Option<&str>) -> Result<Device, DeviceError> {
    let inputs: Vec<Device> = host
        .input_devices()
        .map_err(|e| DeviceError::Stream {
            device: name.unwrap_or("default").into(),
            message: format!("cannot list audio inputs: {e}"),
        })?
        .collect();
    let available = || inputs.iter().map(device_label).collect::<Vec<_>>();
    match name {
        Some(name) => inputs
            .iter()
            .find(|d| device_matches(d, name))
            .cloned()
            .ok_or_else(|| DeviceError::NotFound {
                name: name.into(),
                available: available(),
            }),
        None => host
            .default_input_device()
            .ok_or_else(|| DeviceError::NoDefault {
                available: available(),
            }),
    }
}

fn device_matches(device: &Device, name: &str) -> bool {
    device.id().is_ok_and(|id| id.id() == name)
        || device.description().is_ok_and(|d| d.name() == name)
}
