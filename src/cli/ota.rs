//! `edgeinfer ota push`: sends a model to a device over MQTT (signed manifest, then chunks) and
//! follows the transfer until the device commits, installs, shadows, rejects or rolls it back.

pub(super) mod golden;
pub(super) mod link;
pub(super) mod transfer;

use super::operator::BrokerArgs;
use super::EXIT_CONFIG;
use crate::manage::auth;
use crate::manage::ota::protocol::{self, Activation, Manifest};
use clap::{Args, Subcommand, ValueEnum};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, warn};

/// Arguments of `edgeinfer ota`.
#[derive(Args)]
pub(super) struct OtaArgs {
    #[command(subcommand)]
    command: OtaCommand,
}

#[derive(Subcommand)]
enum OtaCommand {
    /// Send a model file to a device and wait until it is committed (or installed, or shadowing).
    Push(PushArgs),
}

/// What the device does with the model once verified (`activate` in the manifest).
#[derive(Clone, Copy, ValueEnum)]
enum Activate {
    /// Serve it on trial; committed if it serves well, rolled back otherwise.
    Active,
    /// Run it beside the active model and report how often they agree.
    Shadow,
    /// Only install it; `activate-model` switches to it later.
    None,
}

impl From<Activate> for Activation {
    fn from(a: Activate) -> Self {
        match a {
            Activate::Active => Activation::Active,
            Activate::Shadow => Activation::Shadow,
            Activate::None => Activation::None,
        }
    }
}

/// Arguments of `edgeinfer ota push`.
#[derive(Args)]
struct PushArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Device id.
    #[arg(long)]
    device: String,
    /// Id of the configured model the file replaces.
    #[arg(long)]
    model_id: String,
    /// The .onnx file to send.
    #[arg(long)]
    model: PathBuf,
    /// Operator private key (from `edgeinfer keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Transfer id; default `{model-id}-{first 12 hex digits of the file's sha256}`, so that
    /// pushing the same file again resumes the same transfer.
    #[arg(long)]
    transfer: Option<String>,
    /// Name of this version, shown in the device's status and model list.
    #[arg(long)]
    label: Option<String>,
    /// Bytes per chunk (1024 to 1048576).
    #[arg(long, default_value_t = 65536)]
    chunk_size: u32,
    /// What the device does once the model is verified.
    #[arg(long, value_enum, default_value = "active")]
    activate: Activate,
    /// A known input (.npy) the device runs the model on before it serves.
    #[arg(long)]
    golden_input: Option<PathBuf>,
    /// The outputs expected on the golden input (.npy, in graph order; repeat). By default they
    /// are computed here by running the model on tract.
    #[arg(long, requires = "golden_input")]
    golden_output: Vec<PathBuf>,
    /// Largest accepted relative difference from the golden outputs.
    #[arg(long, default_value_t = 1e-4, requires = "golden_input")]
    tolerance: f32,
    /// Seconds each signed manifest stays valid.
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// How long to wait for a final state in all.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Return as soon as the model serves on trial, without waiting for its commit.
    #[arg(long)]
    no_wait_commit: bool,
}

pub(super) fn run(args: &OtaArgs) -> ExitCode {
    match &args.command {
        OtaCommand::Push(push) => run_push(push),
    }
}

fn run_push(args: &PushArgs) -> ExitCode {
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match super::build_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome =
        runtime.block_on(async { tokio::time::timeout(args.timeout, link::push(&prepared)).await });
    match outcome {
        Err(_) => {
            error!(
                timeout = ?args.timeout,
                transfer = %prepared.manifest.transfer,
                "No final state from the device"
            );
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            error!(error = %e, "Transfer not sent");
            ExitCode::FAILURE
        }
        Ok(Ok(outcome)) => {
            let (progress, ok) = match outcome {
                transfer::Outcome::Succeeded(p) => (p, true),
                transfer::Outcome::Failed(p) => (p, false),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&progress).unwrap_or_default()
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                error!(
                    state = link::state_name(progress.state),
                    code = progress.code.as_deref().unwrap_or("-"),
                    reason = progress.reason.as_deref().unwrap_or("-"),
                    "The device did not take the model"
                );
                ExitCode::FAILURE
            }
        }
    }
}

/// Everything a push to one device needs, checked before connecting.
#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) mqtt: crate::config::MqttConfig,
    pub(super) address: crate::config::BrokerAddress,
    pub(super) device: String,
    pub(super) key: ed25519_dalek::SigningKey,
    pub(super) ttl: u64,
    pub(super) manifest: Manifest,
    /// The model file.
    pub(super) data: std::sync::Arc<[u8]>,
    pub(super) wait_for_commit: bool,
}

/// What is sent, whoever to: the model file and how the device is to check and use it.
pub(super) struct Update<'a> {
    /// Id of the configured model it replaces.
    pub(super) model_id: &'a str,
    /// The .onnx file.
    pub(super) file: &'a Path,
    /// Transfer id; `None` for `{model-id}-{first 12 hex digits of the sha256}`.
    pub(super) transfer: Option<&'a str>,
    /// Name of the version.
    pub(super) label: Option<&'a str>,
    /// Bytes per chunk.
    pub(super) chunk_size: u32,
    /// What the device does once it is verified.
    pub(super) activate: Activation,
    /// Golden input, outputs (computed on tract when none) and tolerance.
    pub(super) golden: Option<(&'a Path, &'a [PathBuf], f32)>,
}

impl Update<'_> {
    /// Reads the model and the golden files and builds the manifest, with every problem found.
    pub(super) fn manifest(&self) -> Result<(Manifest, std::sync::Arc<[u8]>), String> {
        if !protocol::CHUNK_SIZES.contains(&self.chunk_size) {
            return Err(format!(
                "--chunk-size {} is outside {}..={}",
                self.chunk_size,
                protocol::CHUNK_SIZES.start(),
                protocol::CHUNK_SIZES.end()
            ));
        }
        let file = self.file;
        let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if data.is_empty() {
            return Err(format!("{}: the file is empty", file.display()));
        }
        let sha256: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let transfer = self.transfer.map(str::to_string).unwrap_or_else(|| {
            format!("{}-{}", self.model_id, &sha256[..crate::model::VERSION_LEN])
        });
        if !protocol::valid_transfer_id(&transfer) {
            return Err(format!(
                "transfer id \"{transfer}\" must be 1 to 64 of A-Z a-z 0-9 _ . - \
                 (give one with --transfer)"
            ));
        }
        let golden = match self.golden {
            Some((input, outputs, tolerance)) => Some(
                golden::build(file, input, outputs, tolerance)
                    .map_err(|e| format!("golden: {e}"))?,
            ),
            None => None,
        };
        let manifest = Manifest {
            transfer,
            model: self.model_id.to_string(),
            label: self.label.map(str::to_string),
            size: data.len() as u64,
            sha256,
            chunk_size: self.chunk_size,
            activate: self.activate,
            golden,
        };
        let problems = manifest.problems(u64::MAX);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let manifest_bytes = serde_json::to_vec(&manifest).map_or(0, |v| v.len());
        if manifest_bytes > DEVICE_COMMAND_LIMIT {
            warn!(
                bytes = manifest_bytes,
                "The manifest (with its golden tensors) is larger than a device accepts by \
                 default (remote.max_command_bytes = {DEVICE_COMMAND_LIMIT}); use a smaller \
                 golden input"
            );
        }
        Ok((manifest, data.into()))
    }
}

/// Reads the key, the model and the golden files and builds the manifest.
fn prepare(args: &PushArgs) -> Result<Prepared, String> {
    let key = auth::read_signing_key(&args.key).map_err(|e| e.to_string())?;
    let (mqtt, address) = args
        .broker
        .mqtt_config()
        .map_err(|e| format!("--broker {e}"))?;
    let (manifest, data) = Update {
        model_id: &args.model_id,
        file: &args.model,
        transfer: args.transfer.as_deref(),
        label: args.label.as_deref(),
        chunk_size: args.chunk_size,
        activate: args.activate.into(),
        golden: args
            .golden_input
            .as_deref()
            .map(|input| (input, args.golden_output.as_slice(), args.tolerance)),
    }
    .manifest()?;
    Ok(Prepared {
        mqtt,
        address,
        device: args.device.clone(),
        key,
        ttl: args.ttl,
        manifest,
        data,
        wait_for_commit: !args.no_wait_commit,
    })
}

/// Default `remote.max_command_bytes` of a device.
const DEVICE_COMMAND_LIMIT: usize = 256 * 1024;
