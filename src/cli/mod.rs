//! Command line: one file per subcommand.

mod bench;
mod bench_fleet;
mod bench_outbox;
mod check_config;
mod cmd;
mod compare;
mod fleet;
mod infer;
mod keygen;
mod logging;
mod operator;
mod ota;
mod outbox;
mod print_default_config;
mod progress;
mod record;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for an invalid config or command line.
pub const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "edgeinfer",
    version,
    about = "Edge inference daemon: sensors → ONNX models → durable outbox → MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check config files and print every problem with its key path; exit 2 if any.
    CheckConfig {
        /// Config files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a complete, commented default config.
    PrintDefaultConfig,
    /// Run one model once on .npy inputs and write each output as .npy.
    Infer(infer::InferArgs),
    /// Latency and memory of each backend on a model, with ratios to onnxruntime.
    Bench(bench::BenchArgs),
    /// Record a sensor's frames with their timing, for replay with `type = "recording"`.
    Record(record::RecordArgs),
    /// Outbox append rate per durability setting, drain rate with and without batching, and disk
    /// and memory under churn.
    BenchOutbox(bench_outbox::BenchOutboxArgs),
    /// Many devices in one process (a whole daemon each) against one broker, with a consumer
    /// measuring message rates and latency: a fleet to measure brokers and fleet commands on.
    BenchFleet(bench_fleet::BenchFleetArgs),
    /// A recording through the serving model and a candidate file: agreement, score
    /// differences, latency ratio and the frames where they disagree (`--min-agreement`: a gate).
    Compare(compare::CompareArgs),
    /// Inspect, export or empty the outbox of a stopped daemon.
    Outbox(outbox::OutboxArgs),
    /// Make an operator key pair for signing commands (`remote.operator_keys` takes the public key).
    Keygen(keygen::KeygenArgs),
    /// Send one signed command to a device over MQTT and print its result.
    Cmd(cmd::CmdArgs),
    /// Model updates over MQTT: `ota push` sends a model to a device and follows it until the
    /// device commits it (or rejects or rolls it back).
    Ota(ota::OtaArgs),
    /// Many devices at once: `fleet status` shows them all, `fleet rollout` updates a model in
    /// waves with a failure threshold and an optional shadow-agreement gate.
    Fleet(fleet::FleetArgs),
}

/// Parses the command line, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    crate::memory::disable_huge_pages_unless_asked();
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::CheckConfig { files } => check_config::run(&files),
        Command::PrintDefaultConfig => print_default_config::run(),
        Command::Infer(args) => infer::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Record(args) => record::run(&args),
        Command::Outbox(args) => outbox::run(&args),
        Command::BenchOutbox(args) => bench_outbox::run(&args),
        Command::BenchFleet(args) => bench_fleet::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Cmd(args) => cmd::run(&args),
        Command::Ota(args) => ota::run(&args),
        Command::Fleet(args) => fleet::run(&args),
    }
}

/// Loads and validates a config, logging every problem; the error is the exit status to return.
fn load_config(path: &std::path::Path) -> Result<crate::config::Config, ExitCode> {
    crate::config::Config::load(path).map_err(|err| {
        for line in err.lines() {
            tracing::error!("{line}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Builds a tokio runtime, logging why it could not be built.
fn build_runtime(
    builder: &mut tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        tracing::error!(error = %e, "Cannot start the async runtime");
        ExitCode::FAILURE
    })
}
