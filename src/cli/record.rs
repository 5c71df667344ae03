//! `edgeinfer record --config FILE --sensor ID --out FILE [--duration S] [--frames N]`: store a sensor's frames
//! with their timing, to replay later through any model (`type = "recording"`).

use super::EXIT_CONFIG;
use crate::config::{Overflow, QueueConfig};
use crate::pipeline::FrameQueue;
use crate::prediction::rfc3339;
use crate::recording::{Header, RecordingWriter};
use crate::sensor::{self, CaptureSettings, FrameSource};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Arguments of `edgeinfer record`.
#[derive(Args)]
pub(super) struct RecordArgs {
    /// Config file (TOML) that defines the sensor.
    #[arg(long, short)]
    config: PathBuf,
    /// Id of the sensor to record.
    #[arg(long)]
    sensor: String,
    /// Recording to write (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds (otherwise at the end of the input, or on Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many frames.
    #[arg(long)]
    frames: Option<u64>,
}

/// Frames waiting for the writer; the sensor waits when the disk falls behind.
const QUEUE: QueueConfig = QueueConfig {
    capacity: 64,
    overflow: Overflow::Block,
};

/// A sensor opened and its recording created.
struct Opened {
    id: Arc<str>,
    source: Box<dyn FrameSource>,
    settings: CaptureSettings,
    writer: RecordingWriter,
}

/// The sensor opened and the recording created, or the exit code saying why not.
fn open(args: &RecordArgs) -> Result<Opened, ExitCode> {
    let config = super::load_config(&args.config)?;
    let Some(sc) = config.sensors.iter().find(|s| s.id == args.sensor) else {
        let ids: Vec<&str> = config.sensors.iter().map(|s| s.id.as_str()).collect();
        error!(sensor = %args.sensor, known = ?ids, "No such sensor in the config");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            error!(
                duration = d,
                "--duration must be a positive number of seconds"
            );
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    }
    let Some(kind) = sc.source.facts().frame_kind() else {
        error!(sensor = %sc.id, "Cannot tell what kind of frames this sensor produces");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    let (source, settings) = match sensor::open(&sc.source) {
        Ok(s) => s,
        Err(e) => {
            error!(sensor = %sc.id, error = %e, "Cannot open the sensor");
            return Err(ExitCode::FAILURE);
        }
    };
    let header = Header {
        sensor: sc.id.clone(),
        kind,
        source: sc.source.type_name().to_string(),
        started_at: rfc3339(SystemTime::now()),
        writer: format!("edgeinfer {}", env!("CARGO_PKG_VERSION")),
    };
    let writer = match RecordingWriter::create(&args.out, &header) {
        Ok(w) => w,
        Err(e) => {
            error!(error = %e, "Cannot create the recording");
            return Err(ExitCode::FAILURE);
        }
    };
    Ok(Opened {
        id: sc.id.as_str().into(),
        source,
        settings,
        writer,
    })
}

pub(super) fn run(args: &RecordArgs) -> ExitCode {
    let Opened {
        id,
        source,
        settings,
        mut writer,
    } = match open(args) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let runtime = match super::build_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    let queue = FrameQueue::new();
    let port = queue.port(Arc::clone(&id), QUEUE);
    let capture = {
        let (queue, token, id) = (Arc::clone(&queue), shutdown.clone(), Arc::clone(&id));
        std::thread::Builder::new()
            .name(format!("sensor-{id}"))
            .spawn(move || {
                sensor::run_capture(id, source, settings, port, token);
                queue.close();
            })
    };
    let capture = match capture {
        Ok(t) => t,
        Err(e) => {
            error!(error = %e, "Cannot start the sensor thread");
            return ExitCode::FAILURE;
        }
    };
    info!(sensor = %id, out = %args.out.display(), "Recording");

    let duration = args.duration.map(Duration::from_secs_f64);
    let stopper = {
        let (queue, token) = (Arc::clone(&queue), shutdown.clone());
        runtime.spawn(async move {
            let deadline = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = super::run::wait_for_signal(token.clone()) => {}
                _ = deadline => info!("Duration reached"),
            }
            token.cancel();
            queue.close();
        })
    };
    let limit = args.frames.unwrap_or(u64::MAX);
    let bar = progress_bar(args.frames, duration);
    let written = runtime.block_on(async {
        let (queue, token, bar) = (Arc::clone(&queue), shutdown.clone(), bar.clone());
        tokio::task::spawn_blocking(move || {
            while writer.frames() < limit {
                let Some(frame) = queue.pop() else { break };
                if let Err(e) = writer.write(&frame) {
                    warn!(error = %e, "Frame not recorded");
                }
                bar.set_position(writer.frames());
                bar.set_message(indicatif::HumanBytes(writer.bytes()).to_string());
            }
            token.cancel();
            let (frames, bytes) = (writer.frames(), writer.bytes());
            writer.finish().map(|()| (frames, bytes))
        })
        .await
    });
    stopper.abort();
    bar.finish_and_clear();
    shutdown.cancel();
    let _ = capture.join();
    match written {
        Ok(Ok((frames, bytes))) => {
            info!(frames, bytes, out = %args.out.display(), "Recording written");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            error!(error = %e, "Recording incomplete");
            ExitCode::FAILURE
        }
        Err(e) => {
            error!(error = %e, "Recording writer failed");
            ExitCode::FAILURE
        }
    }
}

/// The bar of a recording: of frames with `--frames`, else a count with the time so far.
fn progress_bar(frames: Option<u64>, duration: Option<Duration>) -> indicatif::ProgressBar {
    match (frames, duration) {
        (Some(n), _) => super::progress::bar(
            n,
            "record [{wide_bar}] {pos}/{len} frames, {msg}, ETA {eta}",
        ),
        (None, Some(d)) => super::progress::bar(
            d.as_secs(),
            "record {spinner} {pos} frames, {msg}, {elapsed} of {len}s",
        ),
        (None, None) => super::progress::bar(
            0,
            "record {spinner} {pos} frames, {msg}, {elapsed} (Ctrl-C stops)",
        ),
    }
}
