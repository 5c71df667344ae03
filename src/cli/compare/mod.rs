//! `edgeinfer compare --config C --recording R --candidate F`: a recording of field data (made by
//! `edgeinfer record`) through the serving model and a candidate file, with the same pre- and
//! post-processing (the model's config, the candidate's path swapped in), frame by frame: top-1
//! agreement (as a shadow run counts it), score differences, the latency ratio, and the frames
//! where they disagree. `--min-agreement` makes the exit status a CI gate, and the JSON report is
//! what `fleet rollout --require-compare` checks.

pub(in crate::cli) mod report;

pub(in crate::cli) use report::Report;

use super::EXIT_CONFIG;
use crate::config::{Config, ModelConfig};
use crate::pipeline::serving::{agree, Serving};
use crate::prediction::InferenceResult;
use crate::recording::RecordingReader;
use clap::Args;
use report::Side;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tracing::error;

/// Arguments of `edgeinfer compare`.
#[derive(Args)]
pub(super) struct CompareArgs {
    /// Config file (TOML) with the sensor and its model.
    #[arg(long, short)]
    config: PathBuf,
    /// Recording to replay (from `edgeinfer record`).
    #[arg(long)]
    recording: PathBuf,
    /// The candidate .onnx file.
    #[arg(long)]
    candidate: PathBuf,
    /// Sensor whose model is compared; default the recording's sensor.
    #[arg(long)]
    sensor: Option<String>,
    /// Least agreement (0 to 1) for exit status 0.
    #[arg(long)]
    min_agreement: Option<f64>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Most disagreeing frames listed.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Compare at most this many frames.
    #[arg(long)]
    frames: Option<u64>,
}

/// Why a comparison did not run.
#[derive(Debug, thiserror::Error)]
enum CompareError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Run(String),
}

pub(super) fn run(args: &CompareArgs) -> ExitCode {
    if let Some(m) = args.min_agreement {
        if !(0.0..=1.0).contains(&m) {
            error!("--min-agreement {m}: must be within 0 and 1");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let report = match compare(args) {
        Ok(r) => r,
        Err(CompareError::Input(e)) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(CompareError::Run(e)) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.report {
        if let Err(e) = crate::durable::write_atomically(path, json.as_bytes()) {
            error!(report = %path.display(), error = %e, "Cannot write the report");
            return ExitCode::FAILURE;
        }
    }
    if report.passed == Some(false) {
        error!(
            agreement = report.agreement,
            min_agreement = args.min_agreement,
            "The candidate disagrees with the serving model too often"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn compare(args: &CompareArgs) -> Result<Report, CompareError> {
    let input = |e: String| CompareError::Input(e);
    let config = Config::load(&args.config).map_err(|e| input(e.lines().join("; ")))?;
    let mut reader = RecordingReader::open(&args.recording).map_err(|e| input(e.to_string()))?;
    let sensor = args
        .sensor
        .clone()
        .unwrap_or_else(|| reader.header().sensor.clone());
    let model = model_of(&config, &sensor).map_err(input)?;
    let serving = Serving::load(model, None).map_err(|e| {
        input(format!(
            "the serving model \"{}\" ({}): {e}",
            model.id,
            model.path.display()
        ))
    })?;
    let candidate_config = ModelConfig {
        path: args.candidate.clone(),
        sha256: None,
        ..model.clone()
    };
    let candidate = Serving::load(&candidate_config, None).map_err(|e| {
        input(format!(
            "the candidate {} does not fit model \"{}\" as configured (its pre- and \
             post-processing): {e}",
            args.candidate.display(),
            model.id
        ))
    })?;
    let mut report = Report::new(
        &sensor,
        model,
        &serving,
        &args.candidate,
        &candidate,
        &args.recording,
    )
    .map_err(CompareError::Run)?;
    let mut states = (
        serving.model.initial_state(),
        candidate.model.initial_state(),
    );
    let mut n = 0u64;
    while args.frames.is_none_or(|max| n < max) {
        let Some((offset, payload)) = reader
            .next_frame()
            .map_err(|e| CompareError::Run(e.to_string()))?
        else {
            break;
        };
        let a = side(&serving, &payload, &mut states.0);
        let b = side(&candidate, &payload, &mut states.1);
        report.add(n, offset, a, b, args.show);
        n += 1;
    }
    if n == 0 {
        return Err(input(format!(
            "{}: no frames to compare",
            args.recording.display()
        )));
    }
    report.finish(args.min_agreement);
    Ok(report)
}

/// The model the sensor feeds.
fn model_of<'c>(config: &'c Config, sensor: &str) -> Result<&'c ModelConfig, String> {
    let Some(s) = config.sensors.iter().find(|s| s.id == sensor) else {
        let ids: Vec<&str> = config.sensors.iter().map(|s| s.id.as_str()).collect();
        return Err(format!(
            "no sensor \"{sensor}\" in the config (it has {}); give one with --sensor",
            ids.join(", ")
        ));
    };
    config
        .models
        .iter()
        .find(|m| m.id == s.model)
        .ok_or_else(|| format!("sensor \"{sensor}\" feeds no configured model"))
}

/// One model on one frame: its result and latency, or why it failed.
fn side(
    serving: &Serving,
    payload: &crate::frame::Payload,
    state: &mut crate::model::RecurrentState,
) -> Side {
    let input = match serving.pre.apply(payload) {
        Ok(t) => t,
        Err(e) => return Side::Failed(e.to_string()),
    };
    let started = Instant::now();
    let outputs = match serving.model.run(input, state) {
        Ok(o) => o,
        Err(e) => return Side::Failed(e.to_string()),
    };
    let latency = started.elapsed();
    match serving.post.apply(&outputs) {
        Ok(result) => Side::Ran(result, latency),
        Err(e) => Side::Failed(e.to_string()),
    }
}

/// Whether two results agree, as a shadow run counts it.
fn same(a: &InferenceResult, b: &InferenceResult) -> bool {
    agree(a, b)
}

/// The top score of a classification for the label `label`, if present.
fn score_of(result: &InferenceResult, label: &str) -> Option<f32> {
    match result {
        InferenceResult::Classes { top } => top.iter().find(|c| c.label == label).map(|c| c.score),
        InferenceResult::Boxes { boxes } => {
            boxes.iter().find(|b| b.label == label).map(|b| b.score)
        }
        InferenceResult::Raw { .. } => None,
    }
}

/// The best label and score of a result, if it has one.
fn best(result: &InferenceResult) -> Option<(&str, f32)> {
    match result {
        InferenceResult::Classes { top } => top.first().map(|c| (c.label.as_str(), c.score)),
        InferenceResult::Boxes { boxes } => boxes.first().map(|b| (b.label.as_str(), b.score)),
        InferenceResult::Raw { .. } => None,
    }
}

/// Frame offset in milliseconds.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// sha256 of a file, hex.
fn sha256(path: &Path) -> Result<String, String> {
    crate::model::sha256_file(path).map_err(|e| format!("{}: {e}", path.display()))
}
