//! `edgeinfer bench`: latency and memory of every backend on one model, each in a fresh process,
//! with the ratio to onnxruntime (in-process `ort-cpu`, and optionally standalone Python
//! onnxruntime) measured in the same run.
//!
//! With `--config FILE`, `--model` names a configured model and the per-frame path is measured
//! too: pre-processing of a synthetic frame + inference + post-processing, against inference alone.

mod frame_path;
mod table;

use crate::backend::{self, filled, InputOverrides, PrepareOptions, PreparedModel};
use crate::config::OrtOptions;
use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tract_onnx::prelude::{DatumType, Tensor};

/// Arguments of `edgeinfer bench`.
#[derive(Args, Clone)]
pub struct BenchArgs {
    /// An .onnx file, or with --config the id of a configured model.
    #[arg(long)]
    model: String,
    /// Config file whose model (pre/post-processing, inputs) to measure on the whole per-frame path.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Backends to measure (repeat); default: every one compiled in and available.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// Timed runs per backend.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Intra-op threads for every backend.
    #[arg(long)]
    threads: Option<usize>,
    /// Concrete shape for a dynamic input, as NAME=1,3,224,224 (repeat).
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Fill an input with one value instead of random data, as NAME=16000 (repeat).
    #[arg(long = "value")]
    values: Vec<String>,
    /// Synthetic camera frame for --config image models, as WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    frame: String,
    /// Also time standalone onnxruntime with this script (scripts/ort_bench.py).
    #[arg(long)]
    reference_script: Option<PathBuf>,
    /// Internal: measure one backend in this process and print JSON.
    #[arg(long, hide = true)]
    child: bool,
}

/// One backend's figures.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    backend: String,
    #[serde(default)]
    load_ms: f64,
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
    min_us: f64,
    peak_rss_kb: u64,
    /// Pre-processing + inference + post-processing, median (with --config).
    #[serde(default)]
    frame_median_us: Option<f64>,
    /// Pre-processing alone, median (with --config).
    #[serde(default)]
    pre_median_us: Option<f64>,
    /// Post-processing alone, median (with --config).
    #[serde(default)]
    post_median_us: Option<f64>,
    /// Inference that follows an idle gap as long as the frame's pre- and post-processing,
    /// median (with --config): what the runtime itself loses when its calls are not
    /// back-to-back, with no work of ours in the gap.
    #[serde(default)]
    gapped_median_us: Option<f64>,
    /// Pre-processing as timed inside the whole frame, median (with --config).
    #[serde(default)]
    pre_in_frame_median_us: Option<f64>,
    /// Post-processing as timed inside the whole frame, median (with --config).
    #[serde(default)]
    post_in_frame_median_us: Option<f64>,
}

impl Measured {
    /// Inference figures of `backend` from its timed runs.
    fn new(backend: String, load_ms: f64, times: Vec<Duration>) -> Self {
        let (median_us, p90_us, p99_us, min_us) = stats(times);
        Measured {
            backend,
            load_ms,
            median_us,
            p90_us,
            p99_us,
            min_us,
            peak_rss_kb: peak_rss_kb(),
            frame_median_us: None,
            pre_median_us: None,
            post_median_us: None,
            gapped_median_us: None,
            pre_in_frame_median_us: None,
            post_in_frame_median_us: None,
        }
    }
}

pub(super) fn run(args: &BenchArgs) -> ExitCode {
    let result = if args.child {
        measure(args).map(|m| println!("{}", serde_json::to_string(&m).unwrap_or_default()))
    } else {
        compare(args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_pairs<T: std::str::FromStr>(items: &[String]) -> anyhow::Result<Vec<(String, T)>> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("expected NAME=VALUE, got {s:?}"))?;
            Ok((
                k.to_string(),
                v.parse::<T>().map_err(|_| anyhow!("bad value in {s:?}"))?,
            ))
        })
        .collect()
}

fn items_to_shapes(items: &[String]) -> anyhow::Result<InputOverrides> {
    let mut out = InputOverrides::new();
    for (name, dims) in parse_pairs::<String>(items)? {
        let dims = dims
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<usize>()
                    .map_err(|_| anyhow!("bad dimension {d:?} for {name}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.insert(name, (None, dims));
    }
    Ok(out)
}

/// Median, p90, p99 and min of durations, in µs.
fn stats(mut times: Vec<Duration>) -> (f64, f64, f64, f64) {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pick = |q: f64| {
        let i = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        us(times[i])
    };
    (pick(0.5), pick(0.9), pick(0.99), us(times[0]))
}

/// Times `f` on what `setup` makes, made before the clock starts each run.
fn time_runs<T>(
    warmup: usize,
    runs: usize,
    mut setup: impl FnMut() -> T,
    mut f: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..warmup {
        f(setup())?;
    }
    (0..runs.max(1))
        .map(|_| {
            let input = setup();
            let t = Instant::now();
            f(input)?;
            Ok(t.elapsed())
        })
        .collect()
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Random data in [0, 1) for float inputs, zeros otherwise, unless a value is given.
fn synthetic(
    dt: DatumType,
    shape: &[usize],
    value: Option<f64>,
    seed: &mut u64,
) -> anyhow::Result<Tensor> {
    if let Some(v) = value {
        return Ok(filled(dt, shape, v)?);
    }
    if !matches!(dt, DatumType::F32 | DatumType::F64) {
        return Ok(filled(dt, shape, 0.0)?);
    }
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Ok(Tensor::from_shape(shape, &data)?
        .cast_to_dt(dt)?
        .into_owned())
}

/// Measures one backend in this process.
fn measure(args: &BenchArgs) -> anyhow::Result<Measured> {
    let name = args
        .backends
        .first()
        .ok_or_else(|| anyhow!("--child needs one --backend"))?;
    let values = parse_pairs::<f64>(&args.values)?;
    match &args.config {
        Some(path) => frame_path::measure_configured(args, name, path),
        None => {
            let backend = backend::by_name(name, &OrtOptions::default())
                .ok_or_else(|| anyhow!("no backend {name:?} in this build"))?;
            backend
                .check()
                .map_err(|r| anyhow!("{name} is not available: {r}"))?;
            let options = PrepareOptions {
                overrides: items_to_shapes(&args.shapes)?,
                constants: values.iter().cloned().collect(),
                threads: args.threads,
            };
            let started = Instant::now();
            let prepared = backend.prepare(std::path::Path::new(&args.model), &options)?;
            let load_ms = started.elapsed().as_secs_f64() * 1e3;
            let inputs = inputs_for(prepared.as_ref(), &values)?;
            // The inputs are copied before the clock starts: the daemon hands its tensors over.
            let times = time_runs(
                args.warmup,
                args.runs,
                || inputs.clone(),
                |inputs| {
                    prepared.run(inputs)?;
                    Ok(())
                },
            )?;
            Ok(Measured::new(name.clone(), load_ms, times))
        }
    }
}

fn inputs_for(
    prepared: &dyn PreparedModel,
    values: &[(String, f64)],
) -> anyhow::Result<Vec<Tensor>> {
    let mut seed = 1u64;
    prepared
        .inputs()
        .iter()
        .map(|spec| {
            let value = values
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map(|(_, v)| *v);
            synthetic(spec.datum_type, &spec.shape, value, &mut seed)
        })
        .collect()
}

/// Runs every backend in its own process and prints the table.
fn compare(args: &BenchArgs) -> anyhow::Result<()> {
    let names: Vec<String> = if args.backends.is_empty() {
        backend::candidates(&OrtOptions::default())
            .into_iter()
            .filter(|b| b.check().is_ok())
            .map(|b| b.name().to_string())
            .collect()
    } else {
        args.backends.clone()
    };
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    let steps = names.len() + usize::from(args.reference_script.is_some());
    let bar = super::progress::bar(
        steps as u64,
        "bench [{wide_bar}] {pos}/{len} measured, now {msg}, {elapsed}",
    );
    for name in &names {
        bar.set_message(name.clone());
        let mut child = args.clone();
        child.child = true;
        child.backends = vec![name.clone()];
        let out = Command::new(&exe)
            .arg("bench")
            .args(child_args(&child))
            .output()?;
        if !out.status.success() {
            eprintln!("{name}: {}", String::from_utf8_lossy(&out.stderr).trim());
            continue;
        }
        rows.push(serde_json::from_slice::<Measured>(&out.stdout).context("child output")?);
        bar.inc(1);
    }
    if let Some(script) = &args.reference_script {
        bar.set_message("the reference script");
        if args.config.is_some() {
            bail!("--reference-script measures a bare .onnx; use it without --config");
        }
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(&args.model).args([
            "--runs",
            &args.runs.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ]);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        for s in &args.shapes {
            cmd.args(["--shape", s]);
        }
        for v in &args.values {
            cmd.args(["--value", v]);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!(
                "reference script failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        rows.push(serde_json::from_slice(&out.stdout).context("reference script output")?);
    }
    bar.finish_and_clear();
    if rows.is_empty() {
        bail!("no backend could be measured");
    }
    table::print_table(args, &rows);
    Ok(())
}

fn child_args(a: &BenchArgs) -> Vec<String> {
    let mut v = vec![
        "--child".to_string(),
        "--model".into(),
        a.model.clone(),
        "--runs".into(),
        a.runs.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--frame".into(),
        a.frame.clone(),
    ];
    if let Some(c) = &a.config {
        v.extend(["--config".into(), c.display().to_string()]);
    }
    if let Some(t) = a.threads {
        v.extend(["--threads".into(), t.to_string()]);
    }
    for b in &a.backends {
        v.extend(["--backend".into(), b.clone()]);
    }
    for s in &a.shapes {
        v.extend(["--shape".into(), s.clone()]);
    }
    for s in &a.values {
        v.extend(["--value".into(), s.clone()]);
    }
    v
}
