//! Checks a received model before it may serve: size and sha256 against the signed manifest,
//! loading on the model's backend, pre- and post-processing that fit it, and the golden input.

use super::protocol::{Golden, Manifest};
use crate::config::ModelConfig;
use crate::model::{sha256_file, LoadedModel};
use crate::pipeline::Serving;
use base64::Engine;
use std::path::Path;
use tract_onnx::prelude::Tensor;

/// Why a received model was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Short, stable name of the reason.
    pub code: &'static str,
    /// In words.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Verifies the file at `part` against `manifest` and prepares it to serve in place of the
/// model of `config`.
pub fn verify(part: &Path, manifest: &Manifest, config: &ModelConfig) -> Result<Serving, Refusal> {
    let size = std::fs::metadata(part)
        .map_err(|e| refuse("storage", format!("{}: {e}", part.display())))?
        .len();
    if size != manifest.size {
        return Err(refuse(
            "size_mismatch",
            format!("file is {size} bytes; the manifest says {}", manifest.size),
        ));
    }
    let sha = sha256_file(part).map_err(|e| refuse("storage", e.to_string()))?;
    if !sha.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(refuse(
            "sha256_mismatch",
            format!(
                "sha256 of the received file is {sha}; the signed manifest says {}",
                manifest.sha256
            ),
        ));
    }
    let mut candidate = config.clone();
    candidate.path = part.to_path_buf();
    candidate.sha256 = Some(sha);
    // A backend that panics on a malformed file must not take the daemon with it.
    let serving =
        std::panic::catch_unwind(|| super::serving_of(&candidate, manifest.label.clone()))
            .map_err(|_| {
                refuse(
                    "not_loadable",
                    "the backend panicked while loading the file",
                )
            })??;
    if let Some(golden) = &manifest.golden {
        check_golden(&serving.model, golden)?;
    }
    Ok(serving)
}

fn decode(what: &str, text: &str) -> Result<Tensor, Refusal> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| refuse("bad_golden", format!("{what}: not base64: {e}")))?;
    crate::npy::parse(&bytes).map_err(|e| refuse("bad_golden", format!("{what}: {e}")))
}

/// Runs the golden input and compares every given output.
fn check_golden(model: &LoadedModel, golden: &Golden) -> Result<(), Refusal> {
    let input = decode("golden input", &golden.input)?;
    let spec = model.input();
    if input.shape() != spec.shape.as_slice() {
        return Err(refuse(
            "bad_golden",
            format!(
                "golden input has shape {:?}; the model takes {:?}",
                input.shape(),
                spec.shape
            ),
        ));
    }
    let input = input
        .cast_to_dt(spec.datum_type)
        .map_err(|e| refuse("bad_golden", format!("golden input: {e}")))?
        .into_owned();
    let mut state = model.initial_state();
    let outputs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.run(input, &mut state)
    }))
    .map_err(|_| refuse("golden_failed", "the backend panicked on the golden input"))?
    .map_err(|e| refuse("golden_failed", format!("the golden input fails: {e}")))?;
    if golden.outputs.len() > outputs.len() {
        return Err(refuse(
            "bad_golden",
            format!(
                "{} golden outputs given; the model has {}",
                golden.outputs.len(),
                outputs.len()
            ),
        ));
    }
    for (i, (expected, got)) in golden.outputs.iter().zip(&outputs).enumerate() {
        let expected = decode(&format!("golden output {i}"), expected)?;
        let name = &model.outputs()[i];
        if expected.shape() != got.shape() {
            return Err(refuse(
                "golden_mismatch",
                format!(
                    "output \"{name}\" has shape {:?}; expected {:?}",
                    got.shape(),
                    expected.shape()
                ),
            ));
        }
        let as_f32 = |t: &Tensor| -> Result<Vec<f32>, Refusal> {
            let t = t
                .cast_to::<f32>()
                .map_err(|e| refuse("bad_golden", e.to_string()))?;
            let view = t
                .to_plain_array_view::<f32>()
                .map_err(|e| refuse("bad_golden", e.to_string()))?;
            Ok(view.iter().copied().collect())
        };
        let (want, have) = (as_f32(&expected)?, as_f32(got)?);
        let worst = want
            .iter()
            .zip(&have)
            .map(|(w, h)| {
                let err = (h - w).abs() / w.abs().max(1.0);
                if err.is_nan() {
                    f32::INFINITY
                } else {
                    err
                }
            })
            .fold(0.0f32, f32::max);
        if worst > golden.tolerance {
            return Err(refuse(
                "golden_mismatch",
                format!(
                    "output \"{name}\" differs from the golden output by {worst:.3e} (tolerance {:.1e})",
                    golden.tolerance
                ),
            ));
        }
    }
    Ok(())
}
