//! `edgeinfer infer --model M.onnx --input NAME=x.npy ... --output DIR`: run a model once, offline.
//!
//! Inputs take their shapes from the .npy files, so models with dynamic dimensions run as given.
//! Output files are named after the outputs, with characters outside `[A-Za-z0-9._-]` replaced by `_`.

use crate::backend::{self, InputOverrides, PrepareOptions, PreparedModel};
use crate::config::OrtOptions;
use crate::npy;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tract_onnx::prelude::Tensor;

/// Arguments of `edgeinfer infer`.
#[derive(Args)]
pub struct InferArgs {
    /// The .onnx model.
    #[arg(long)]
    model: PathBuf,
    /// An input as NAME=FILE.npy (or just FILE.npy for a single-input model); repeat for each input.
    #[arg(long = "input", required = true)]
    inputs: Vec<String>,
    /// Folder for the outputs (created if missing).
    #[arg(long)]
    output: PathBuf,
    /// Backend to run on: `tract`, an `ort-*` backend in builds with the `ort` feature, or `auto`
    /// for the daemon's choice (accelerators present, then tract, then onnxruntime on the CPU,
    /// each tried until one loads the model).
    #[arg(long, default_value = "tract")]
    backend: String,
    /// Intra-op threads (backend default when absent).
    #[arg(long)]
    threads: Option<usize>,
    /// Treat this one-value input (e.g. a sample rate) as a constant the backend may fold into the
    /// graph, as `constant_inputs` does in the daemon; its value still comes from its .npy file.
    #[arg(long = "fold")]
    fold: Vec<String>,
}

/// `name` made safe as a file name.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn run(args: &InferArgs) -> ExitCode {
    match infer(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn infer(args: &InferArgs) -> anyhow::Result<()> {
    let mut given: Vec<(Option<String>, Tensor)> = Vec::new();
    for spec in &args.inputs {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) => (Some(n.to_string()), PathBuf::from(f)),
            None => (None, PathBuf::from(spec)),
        };
        given.push((name, npy::read(&file)?));
    }
    // First pass learns the input names; shapes come from the files.
    let names = input_names(&args.model)?;
    let tensors = in_model_order(&names, given)?;
    let overrides: InputOverrides = names
        .iter()
        .zip(&tensors)
        .map(|(n, t)| (n.clone(), (Some(t.datum_type()), t.shape().to_vec())))
        .collect();
    let mut constants = std::collections::BTreeMap::new();
    for name in &args.fold {
        let ix = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| anyhow::anyhow!("--fold {name}: the model has no such input"))?;
        let t = &tensors[ix];
        if t.len() != 1 {
            anyhow::bail!(
                "--fold {name}: the input has {} values, a constant has one",
                t.len()
            );
        }
        let value = t
            .cast_to::<f64>()?
            .to_plain_array_view::<f64>()?
            .iter()
            .copied()
            .next();
        constants.insert(name.clone(), value.unwrap_or_default());
    }
    let options = PrepareOptions {
        overrides,
        constants,
        threads: args.threads,
    };
    let (backend, prepared) = prepare(args, &options)?;
    let started = Instant::now();
    let outputs = prepared.run(tensors)?;
    let elapsed = started.elapsed();
    std::fs::create_dir_all(&args.output)?;
    for (name, tensor) in prepared.outputs().iter().zip(&outputs) {
        let path = args.output.join(format!("{}.npy", sanitize(name)));
        npy::write(&path, tensor)?;
        println!(
            "{name}\t{:?}\t{:?}\t{}",
            tensor.shape(),
            tensor.datum_type(),
            path.display()
        );
    }
    eprintln!("inference took {} µs ({backend})", elapsed.as_micros());
    Ok(())
}

/// The model prepared on the backend asked for, or for `auto` on the one the daemon would choose
/// (said on stderr, with why each earlier one was passed over).
fn prepare(
    args: &InferArgs,
    options: &PrepareOptions,
) -> anyhow::Result<(&'static str, Box<dyn PreparedModel>)> {
    let ort = OrtOptions::default();
    if args.backend == "auto" {
        let chosen = crate::model::prepare_first("--model", &args.model, &ort, options)?;
        match chosen.passed_over.as_slice() {
            [] => eprintln!("backend auto: {}", chosen.backend),
            passed => eprintln!(
                "backend auto: {} (passed over {})",
                chosen.backend,
                passed.join("; ")
            ),
        }
        return Ok((chosen.backend, chosen.prepared));
    }
    let backend = backend::by_name(&args.backend, &ort).ok_or_else(|| {
        anyhow::anyhow!(
            "no backend \"{}\" in this build (compiled: auto, {})",
            args.backend,
            backend::compiled_names().join(", ")
        )
    })?;
    backend.check().map_err(|reason| {
        anyhow::anyhow!("backend \"{}\" is not available: {reason}", args.backend)
    })?;
    Ok((backend.name(), backend.prepare(&args.model, options)?))
}

/// Input names of an ONNX model, in graph order.
fn input_names(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let graph = model
        .graph
        .ok_or_else(|| anyhow::anyhow!("{} has no graph", path.display()))?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|i| i.name.as_str()).collect();
    Ok(graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(|i| i.name.clone())
        .collect())
}

/// The given inputs in the model's order, each named or, for a model of one input, unnamed.
fn in_model_order(
    names: &[String],
    given: Vec<(Option<String>, Tensor)>,
) -> anyhow::Result<Vec<Tensor>> {
    if given.len() != names.len() {
        anyhow::bail!(
            "the model has {} input(s) ({}), {} given",
            names.len(),
            names.join(", "),
            given.len()
        );
    }
    let mut by_name: Vec<Option<Tensor>> = vec![None; names.len()];
    for (name, tensor) in given {
        let ix = match name {
            Some(n) => names.iter().position(|m| *m == n).ok_or_else(|| {
                anyhow::anyhow!(
                    "the model has no input \"{n}\" (inputs: {})",
                    names.join(", ")
                )
            })?,
            None if names.len() == 1 => 0,
            None => anyhow::bail!("the model has several inputs: name each one as NAME=FILE.npy"),
        };
        if by_name[ix].replace(tensor).is_some() {
            anyhow::bail!("input \"{}\" given twice", names[ix]);
        }
    }
    Ok(by_name
        .into_iter()
        .map(|t| t.expect("every input counted above"))
        .collect())
}
