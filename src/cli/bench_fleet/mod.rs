//! `edgeinfer bench-fleet`: many devices in one process against one broker, each a whole daemon
//! (sensor, model, outbox, uplink, retained status, telemetry, commands and model updates: the
//! same code as `edgeinfer run`, one [`Daemon`] per device), and a consumer that measures what
//! arrives. With the operator commands (`fleet status`, `fleet rollout`) pointed at the same
//! broker this is a fleet to measure the broker and the operator side against.

mod consumer;
mod devices;

use crate::cli::EXIT_CONFIG;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info};

/// Arguments of `edgeinfer bench-fleet`.
#[derive(Args)]
pub(super) struct BenchFleetArgs {
    /// `mqtt://host:port` of the broker.
    #[arg(long)]
    broker: String,
    /// Devices to run.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Predictions per second of each device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds between each device's telemetry messages.
    #[arg(long, default_value_t = 10)]
    telemetry_secs: u64,
    /// Public key (from `edgeinfer keygen`) the devices take commands and models from.
    #[arg(long)]
    operator_key: PathBuf,
    /// A model with one input of 3 values (the bundled `models/vibration.onnx`).
    #[arg(long, default_value = "models/vibration.onnx")]
    model: PathBuf,
    /// Its labels file.
    #[arg(long, default_value = "models/vibration.labels")]
    labels: PathBuf,
    /// Folder for the devices' state (emptied first).
    #[arg(long, default_value = "bench-fleet.tmp")]
    dir: PathBuf,
    /// Devices started per second (a fleet does not connect all at once).
    #[arg(long, default_value_t = 200.0)]
    ramp: f64,
    /// How long to measure once every device runs; until interrupted when absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// After the measurement, keep the devices running until interrupted (to run fleet
    /// commands against them).
    #[arg(long, requires = "duration")]
    keep_running: bool,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 10)]
    report_secs: u64,
    /// Predictions a pushed model serves on trial before it is committed.
    #[arg(long, default_value_t = 5)]
    trial_predictions: u32,
}

pub(super) fn run(args: &BenchFleetArgs) -> ExitCode {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if args.devices == 0 || !positive(args.rate) || !positive(args.ramp) {
        error!("--devices, --rate and --ramp must be above 0");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match crate::cli::build_runtime(&mut tokio::runtime::Builder::new_multi_thread())
    {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: &BenchFleetArgs) -> anyhow::Result<()> {
    devices::raise_file_limit();
    let configs = devices::configs(args)?;
    let consumer = consumer::Consumer::start(&args.broker, "edgeinfer")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let fleet = devices::start(configs, args.ramp, &shutdown).await?;
    info!(
        devices = fleet.len(),
        rss_mib = rss_mib(),
        "Every device runs; measuring"
    );
    consumer.reset();
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(args.report_secs.max(1)));
    tick.tick().await;
    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let s = consumer.summary(started.elapsed());
                info!(
                    predictions_per_s = format!("{:.0}", s.predictions_per_s),
                    messages_per_s = format!("{:.0}", s.messages_per_s),
                    p50_ms = format!("{:.1}", s.p50_ms),
                    p99_ms = format!("{:.1}", s.p99_ms),
                    rss_mib = rss_mib(),
                    "Fleet"
                );
            }
        }
    }
    let summary = consumer.summary(started.elapsed());
    let report = serde_json::json!({
        "devices": fleet.len(),
        "rate_per_device": args.rate,
        "seconds": started.elapsed().as_secs_f64(),
        "predictions_per_s": summary.predictions_per_s,
        "messages_per_s": summary.messages_per_s,
        "inferred_to_consumer_ms": { "p50": summary.p50_ms, "p99": summary.p99_ms, "max": summary.max_ms },
        "by_kind": summary.by_kind,
        "process_rss_mib": rss_mib(),
        "threads": devices::threads(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if args.keep_running {
        info!("Measured; the devices keep running until interrupted");
        let _ = tokio::signal::ctrl_c().await;
    }
    devices::stop(fleet, &shutdown).await;
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}

fn rss_mib() -> u64 {
    crate::manage::system::rss_bytes().unwrap_or(0) >> 20
}
