//! `command` sensors: a program that writes frames to its standard output, for cameras that V4L2
//! capture does not reach (Raspberry Pi CSI cameras through `rpicam-vid --codec mjpeg -o -`,
//! RTSP/IP cameras through `ffmpeg -i rtsp://... -f mjpeg -`), delivering RGB images.
//!
//! `connect` starts the program (no shell, standard input from `/dev/null`) with two threads of
//! its own: one reads its output and cuts it into frames (MJPEG by the marker walk of MJPEG
//! replay, raw RGB24 or YUYV frames by size) into a one-frame slot where the newest frame wins
//! (`feed.rs`), the other forwards its standard error to the log, rate-limited (`stderr.rs`).
//! `next_payload` decodes on the sensor thread and waits at most [`READ_TIMEOUT`] for a frame, so
//! the capture loop notices shutdown.
//!
//! Faults:
//! - the program exits or closes its output: the source is lost, and the capture loop starts it
//!   again;
//! - it writes nothing for `stall_timeout_ms` (a hang): it is killed and the source is lost;
//! - bytes that are not a frame (garbage, a cut-off image): skipped and reported as one bad item
//!   per stretch, and the stream resynchronises at the next start-of-image marker; at most
//!   [`MAX_JPEG_BYTES`] are held looking for an image's end;
//! - a frame that does not decode: a bad item.
//!
//! The capture loop counts each loss in the sensor's `reconnects` and calls `connect` again at
//! once, which starts the program again. A program that ends without delivering a frame (it
//! cannot find its camera, say) is not started again at once: after `n` such runs in a row the
//! next `n` attempts fail (at most [`MAX_HOLD_OFF`]; each is counted too), so the capture loop's
//! backoff spaces the starts 0.5 s, 1.5 s, 3.5 s, ... up to about 30 s apart instead of running
//! the program in a tight loop.
//!
//! The program is stopped (its whole process group killed, then reaped) when a run ends, when the
//! source reconnects, and when it is dropped: when the sensor stops or restarts, and when the
//! daemon stops.

mod feed;
mod process;
mod split;
mod stderr;

use super::camera::{decode_mjpeg, decode_yuyv};
use super::{FrameSource, Next, SensorError};
use crate::config::{CommandConfig, StreamFormat};
use crate::frame::Payload;
use feed::{Event, Feed};
use image::RgbImage;
use process::Process;
use split::{MjpegSplitter, RawSplitter, Splitter};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest `next_payload` waits for a frame before returning `Next::Idle`.
const READ_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a program that closed its output gets to exit by itself before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// Most bytes held from a JPEG start-of-image marker while looking for the image's end.
const MAX_JPEG_BYTES: usize = 16 << 20;
/// How long a stopped program's standard error gets to be logged to its end.
const STDERR_DRAIN: Duration = Duration::from_millis(200);
/// Most attempts refused after a run without a frame.
const MAX_HOLD_OFF: u32 = 6;

/// A program writing frames, started by the capture loop and started again when it ends.
pub struct CommandSource {
    config: CommandConfig,
    /// The program's name, for messages.
    program: String,
    run: Option<Run>,
    /// Attempts to refuse before the program is started again (after runs without a frame).
    hold_off: u32,
    /// Runs in a row that ended without a frame.
    fruitless: u32,
    /// Frames replaced in the slot before they were taken, not yet reported.
    replaced: u64,
    /// The standard-error rate limit, shared by every run.
    stderr_limit: Arc<Mutex<stderr::RateLimit>>,
}

/// One started program.
struct Run {
    process: Process,
    feed: Feed,
    /// The thread forwarding its standard error.
    stderr: JoinHandle<()>,
    /// Frames decoded.
    frames: u64,
}

impl Run {
    /// Stops the program (see [`Process::stop`]) and gives its standard error a moment to be
    /// logged to the end. Says how it ended.
    fn stop(self, grace: Duration) -> String {
        let ended = self.process.stop(grace);
        // The pipe closes with the process group; a descendant that left it could keep it open.
        let deadline = Instant::now() + STDERR_DRAIN;
        while !self.stderr.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        ended
    }
}

impl CommandSource {
    /// A command source; the program is started by `connect`.
    pub fn new(config: CommandConfig) -> Self {
        let program = config.command.first().cloned().unwrap_or_default();
        Self {
            config,
            program,
            run: None,
            hold_off: 0,
            fruitless: 0,
            replaced: 0,
            stderr_limit: Arc::default(),
        }
    }

    fn splitter(&self) -> Splitter {
        match raw_frame_bytes(&self.config) {
            None => Splitter::Mjpeg(MjpegSplitter::new(MAX_JPEG_BYTES)),
            Some(bytes) => Splitter::Raw(RawSplitter::new(bytes)),
        }
    }

    /// Starts the program and its threads.
    fn start(&mut self) -> Result<Run, SensorError> {
        let program = &self.program;
        let (process, stdout, stderr) = Process::spawn(&self.config.command)
            .map_err(|e| SensorError::Lost(format!("{program}: cannot start: {e}")))?;
        // The capture loop's thread is named after its sensor.
        let current = std::thread::current();
        let sensor = current
            .name()
            .and_then(|n| n.strip_prefix("sensor-"))
            .unwrap_or(program);
        let no_thread = |e| SensorError::Lost(format!("{program}: cannot start a thread: {e}"));
        let stderr = stderr::forward(
            stderr,
            sensor.to_string(),
            program.clone(),
            Arc::clone(&self.stderr_limit),
            format!("{sensor}-stderr"),
        )
        .map_err(no_thread)?;
        let feed =
            Feed::start(stdout, self.splitter(), format!("{sensor}-stdout")).map_err(no_thread)?;
        Ok(Run {
            process,
            feed,
            stderr,
            frames: 0,
        })
    }

    /// Stops the program, if one runs, giving it `grace` to exit by itself. Says how it ended,
    /// and how many frames it delivered.
    fn stop_run(&mut self, grace: Duration) -> Option<(String, u64)> {
        let run = self.run.take()?;
        self.replaced += run.feed.take_replaced();
        let frames = run.frames;
        Some((run.stop(grace), frames))
    }

    /// Stops a program that ended or hung (see `stop_run`) and sets how many attempts to refuse
    /// before the next start. Says how it ended.
    fn end_run(&mut self, grace: Duration) -> String {
        let Some((ended, frames)) = self.stop_run(grace) else {
            return "was not running".into();
        };
        self.fruitless = if frames == 0 { self.fruitless + 1 } else { 0 };
        self.hold_off = self.fruitless.min(MAX_HOLD_OFF);
        ended
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        self.stop_run(Duration::ZERO);
    }
}

/// Bytes of one raw frame; `None` for MJPEG.
fn raw_frame_bytes(config: &CommandConfig) -> Option<usize> {
    let bytes_per_pixel = match config.format {
        StreamFormat::Mjpeg => return None,
        StreamFormat::Rgb24 => 3,
        StreamFormat::Yuyv => 2,
    };
    let (width, height) = raw_size(config);
    Some(width as usize * height as usize * bytes_per_pixel)
}

/// Width and height of raw frames (validation requires both for the raw formats).
fn raw_size(config: &CommandConfig) -> (u32, u32) {
    (config.width.unwrap_or(1), config.height.unwrap_or(1))
}

/// Decodes one whole frame (as cut by the splitter) to RGB.
fn decode(config: &CommandConfig, frame: Vec<u8>) -> Result<RgbImage, String> {
    let (width, height) = raw_size(config);
    match config.format {
        StreamFormat::Mjpeg => decode_mjpeg(&frame).map_err(|e| e.to_string()),
        StreamFormat::Yuyv => {
            decode_yuyv(&frame, width, height, width * 2).map_err(|e| e.to_string())
        }
        StreamFormat::Rgb24 => RgbImage::from_raw(width, height, frame)
            .ok_or_else(|| format!("an RGB24 frame of the wrong size for {width}x{height}")),
    }
}

impl FrameSource for CommandSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        self.stop_run(Duration::ZERO);
        if self.hold_off > 0 {
            self.hold_off -= 1;
            return Err(SensorError::Lost(format!(
                "{}: waiting before starting it again",
                self.program
            )));
        }
        self.run = Some(self.start()?);
        Ok(())
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        let program = &self.program;
        let Some(run) = self.run.as_mut() else {
            return Err(SensorError::Lost(format!("{program}: not running")));
        };
        let event = run.feed.next(READ_TIMEOUT);
        match event {
            Event::Frame(frame) => match decode(&self.config, frame) {
                Ok(image) => {
                    run.frames += 1;
                    Ok(Next::frame(Payload::Image(image)))
                }
                Err(e) => Err(SensorError::Item(format!("{program}: {e}"))),
            },
            Event::Skipped(message) => Err(SensorError::Item(format!("{program}: {message}"))),
            Event::Quiet(quiet) if quiet.as_millis() < u128::from(self.config.stall_timeout_ms) => {
                Ok(Next::Idle)
            }
            Event::Quiet(quiet) => {
                let program = program.clone();
                let ended = self.end_run(Duration::ZERO);
                Err(SensorError::Lost(format!(
                    "{program} wrote nothing for {} ms and was stopped ({ended})",
                    quiet.as_millis()
                )))
            }
            Event::Ended(why) => {
                let program = program.clone();
                let ended = self.end_run(EXIT_GRACE);
                Err(SensorError::Lost(format!("{program} {why} and {ended}")))
            }
        }
    }

    /// A live stream has no beginning to go back to.
    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }

    fn take_overruns(&mut self) -> u64 {
        let running = self.run.as_ref().map_or(0, |r| r.feed.take_replaced());
        std::mem::take(&mut self.replaced) + running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 RGB24 frames from `sh -c script`.
    fn raw(script: &str, stall_timeout_ms: u64) -> CommandSource {
        CommandSource::new(CommandConfig {
            command: ["sh", "-c", script].map(String::from).to_vec(),
            format: StreamFormat::Rgb24,
            width: Some(2),
            height: Some(2),
            stall_timeout_ms,
        })
    }

    /// Images until the source is lost, and the message it was lost with.
    fn until_lost(source: &mut CommandSource) -> (Vec<RgbImage>, String) {
        let mut images = Vec::new();
        loop {
            match source.next_payload() {
                Ok(Next::Frame {
                    payload: Payload::Image(image),
                    ..
                }) => images.push(image),
                Ok(Next::Idle) => {}
                Err(SensorError::Lost(message)) => return (images, message),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Failed attempts before `connect` starts the program again.
    fn refusals(source: &mut CommandSource) -> usize {
        (0..10)
            .position(|_| source.connect().is_ok())
            .expect("starts again")
    }

    #[test]
    fn frames_arrive_until_the_program_exits_and_it_is_started_again_at_once() {
        let mut source = raw("printf 'abcdefghijklABCDEFGHIJKL'", 10_000);
        source.connect().unwrap();
        let (images, lost) = until_lost(&mut source);
        // Latest wins: both frames, or the second with the first counted as replaced.
        assert_eq!(images.len() as u64 + source.take_overruns(), 2);
        assert_eq!(images.last().unwrap().as_raw(), b"ABCDEFGHIJKL");
        assert_eq!(lost, "sh closed its output and exited with status 0");
        assert_eq!(refusals(&mut source), 0);
        assert_eq!(
            until_lost(&mut source).0.len() as u64 + source.take_overruns(),
            2
        );
        assert_eq!(refusals(&mut source), 0);
    }

    #[test]
    fn runs_without_a_frame_wait_longer_each_time() {
        let mut source = raw("printf 'abc'; exit 7", 10_000);
        source.connect().unwrap();
        for expected in 1..=3 {
            let (images, lost) = until_lost(&mut source);
            assert!(images.is_empty());
            assert_eq!(lost, "sh closed its output and exited with status 7");
            assert_eq!(refusals(&mut source), expected);
        }
    }

    #[test]
    fn a_silent_program_is_stopped_after_the_stall_timeout() {
        let mut source = raw("exec sleep 1000", 500);
        source.connect().unwrap();
        let (images, lost) = until_lost(&mut source);
        assert!(images.is_empty());
        assert!(lost.starts_with("sh wrote nothing for "), "{lost}");
        assert!(
            lost.ends_with(" ms and was stopped (killed by signal 9)"),
            "{lost}"
        );
        let mut missing = CommandSource::new(CommandConfig {
            command: vec!["/nonexistent/camera-tool".into()],
            ..raw("", 500).config
        });
        match missing.connect() {
            Err(SensorError::Lost(message)) => assert!(
                message.starts_with("/nonexistent/camera-tool: cannot start: "),
                "{message}"
            ),
            other => panic!("expected Lost, got {other:?}"),
        }
    }
}
