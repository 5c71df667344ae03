//! What `fleet rollout` is given, and what is checked of it before anything is sent: the
//! numbers, the key, the broker, the model file, and a passing `compare` report when one is
//! required.

use super::state::Gate;
use crate::cli::fleet::waves::{self, Threshold};
use crate::cli::fleet::SelectArgs;
use crate::cli::operator::BrokerArgs;
use crate::cli::ota::{golden, Update};
use crate::manage::auth;
use crate::manage::ota::protocol::{Activation, Manifest, CHUNK_SIZES};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `edgeinfer fleet rollout`.
#[derive(Args)]
pub(in crate::cli::fleet) struct RolloutArgs {
    #[command(flatten)]
    pub(super) broker: BrokerArgs,
    #[command(flatten)]
    pub(super) select: SelectArgs,
    /// Id of the configured model to update.
    #[arg(long, required_unless_present = "resume")]
    pub(super) model: Option<String>,
    /// The .onnx file to send.
    #[arg(long, required_unless_present = "resume")]
    pub(super) file: Option<PathBuf>,
    /// Operator private key (from `edgeinfer keygen`).
    #[arg(long)]
    pub(super) key: PathBuf,
    /// Cumulative wave sizes, as devices or shares of them, ending at 100%.
    #[arg(long, default_value = "1,10%,50%,100%")]
    pub(super) waves: String,
    /// Failures (a count, or a share of the devices finished) past which the remaining waves
    /// are skipped.
    #[arg(long, default_value = "10%")]
    pub(super) max_failures: String,
    /// Devices that must have finished before the failure threshold is applied.
    #[arg(long, default_value_t = 1)]
    pub(super) min_devices: usize,
    /// Minutes each wave may take; devices with no final state by then have timed out (offline
    /// ones stay pending for the next run).
    #[arg(long, default_value_t = 30.0)]
    pub(super) wait_mins: f64,
    /// Shadow gate: frames the new version runs in the shadow of the serving one before it may
    /// be activated.
    #[arg(long)]
    pub(super) shadow_predictions: Option<u64>,
    /// Shadow gate: least agreement (0 to 1) with the serving model for it to be activated.
    #[arg(long, requires = "shadow_predictions", default_value_t = 0.98)]
    pub(super) min_agreement: f64,
    /// Devices pushed to at the same time within a wave.
    #[arg(long, default_value_t = 16)]
    pub(super) parallel: usize,
    /// Name of this version, shown in the devices' status.
    #[arg(long)]
    pub(super) label: Option<String>,
    /// Bytes per chunk.
    #[arg(long, default_value_t = 65536)]
    pub(super) chunk_size: u32,
    /// A known input (.npy) each device runs the model on before it serves.
    #[arg(long)]
    pub(super) golden_input: Option<PathBuf>,
    /// The outputs expected on the golden input (.npy; repeat); computed on tract by default.
    #[arg(long, requires = "golden_input")]
    pub(super) golden_output: Vec<PathBuf>,
    /// Largest accepted relative difference from the golden outputs.
    #[arg(long, default_value_t = 1e-4, requires = "golden_input")]
    pub(super) tolerance: f32,
    /// Seconds each signed message stays valid.
    #[arg(long, default_value_t = 300)]
    pub(super) ttl: u64,
    /// The state file; default `rollout-{model}-{version}.json` here.
    #[arg(long)]
    pub(super) state: Option<PathBuf>,
    /// Go on with the rollout in the state file (`--state`).
    #[arg(long, requires = "state")]
    pub(super) resume: bool,
    /// Print the waves and exit without sending anything.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// A report of `edgeinfer compare --min-agreement ... --report FILE` that must have passed
    /// for this very file and model before anything is sent.
    #[arg(long)]
    pub(super) require_compare: Option<PathBuf>,
    /// Also write the final JSON report to this file.
    #[arg(long)]
    pub(super) report: Option<PathBuf>,
    /// How long to wait for the broker and the devices' retained status.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub(super) connect_timeout: Duration,
}

/// What is checked before connecting: the numbers, the key, the model file.
pub(super) struct Checked {
    pub(super) key: ed25519_dalek::SigningKey,
    pub(super) mqtt: crate::config::MqttConfig,
    pub(super) address: crate::config::BrokerAddress,
    pub(super) threshold: Threshold,
    pub(super) waves: Vec<waves::Reach>,
    pub(super) gate: Option<Gate>,
}

pub(super) fn check(args: &RolloutArgs) -> Result<Checked, String> {
    let mut problems = Vec::new();
    let waves = waves::parse_waves(&args.waves)
        .map_err(|e| problems.push(e))
        .ok();
    let threshold = Threshold::parse(&args.max_failures)
        .map_err(|e| problems.push(e))
        .ok();
    if let Err(e) = args.select.selector() {
        problems.push(e);
    }
    if !(args.wait_mins.is_finite() && args.wait_mins > 0.0) {
        problems.push(format!("--wait-mins {}: must be above 0", args.wait_mins));
    }
    if args.parallel == 0 {
        problems.push("--parallel must be at least 1".into());
    }
    let gate = args.shadow_predictions.map(|predictions| Gate {
        predictions,
        min_agreement: args.min_agreement,
    });
    if let Some(g) = gate {
        if g.predictions == 0 {
            problems.push("--shadow-predictions must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&g.min_agreement) {
            problems.push(format!(
                "--min-agreement {}: must be within 0 and 1",
                g.min_agreement
            ));
        }
    }
    if !CHUNK_SIZES.contains(&args.chunk_size) {
        problems.push(format!(
            "--chunk-size {} is outside {}..={}",
            args.chunk_size,
            CHUNK_SIZES.start(),
            CHUNK_SIZES.end()
        ));
    }
    let key = auth::read_signing_key(&args.key)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let broker = args
        .broker
        .mqtt_config()
        .map_err(|e| problems.push(format!("--broker {e}")))
        .ok();
    if let Some(file) = &args.file {
        if let Err(e) = golden::first_input(file) {
            problems.push(format!(
                "{}: not a model this rollout can send: {e}",
                file.display()
            ));
        }
    }
    match (key, broker, threshold, waves) {
        (Some(key), Some((mqtt, address)), Some(threshold), Some(waves)) if problems.is_empty() => {
            Ok(Checked {
                key,
                mqtt,
                address,
                threshold,
                waves,
                gate,
            })
        }
        _ => Err(problems.join("\n")),
    }
}

/// The manifest and bytes of `file` for `model`, activated as the gate needs.
pub(super) fn update(
    args: &RolloutArgs,
    model: &str,
    file: &Path,
    checked: &Checked,
) -> Result<(Manifest, Arc<[u8]>), String> {
    Update {
        model_id: model,
        file,
        transfer: None,
        label: args.label.as_deref(),
        chunk_size: args.chunk_size,
        activate: if checked.gate.is_some() {
            Activation::Shadow
        } else {
            Activation::Active
        },
        golden: args
            .golden_input
            .as_deref()
            .map(|input| (input, args.golden_output.as_slice(), args.tolerance)),
    }
    .manifest()
}

/// Whether the compare report at `path` passed its gate for this manifest's model and file.
pub(super) fn compare_passed(path: &Path, manifest: &Manifest) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: crate::cli::compare::Report = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a compare report: {e}", path.display()))?;
    let shown = path.display();
    if report.candidate.sha256 != manifest.sha256 {
        return Err(format!(
            "{shown} compared another file (sha256 {}, this one {})",
            report.candidate.sha256, manifest.sha256
        ));
    }
    if report.model != manifest.model {
        return Err(format!(
            "{shown} compared model \"{}\", not \"{}\"",
            report.model, manifest.model
        ));
    }
    match report.passed {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "{shown}: the candidate failed its comparison (agreement {:.4} < {})",
            report.agreement,
            report.min_agreement.unwrap_or(1.0)
        )),
        None => Err(format!(
            "{shown} has no verdict: run compare with --min-agreement"
        )),
    }
}
