//! The golden check of a manifest: a known input and the outputs the model must give on it,
//! either given as files or computed here by running the model on tract.

use crate::backend::{self, BackendError, PrepareOptions};
use crate::manage::ota::protocol::Golden;
use crate::npy::{self, NpyError};
use base64::Engine;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::{Framework, Tensor};

/// Why a golden check could not be built.
#[derive(Debug, thiserror::Error)]
pub(super) enum GoldenError {
    /// An .npy file could not be read.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// A tensor could not be encoded.
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    /// The model could not be inspected, loaded or run locally.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// The model is not one the outputs can be computed for here.
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
}

/// The golden check of `model` on `input`: `outputs` as they are when given, else the outputs
/// of running the model on tract, single-threaded, with its first input shaped as `input`.
pub(super) fn build(
    model: &Path,
    input: &Path,
    outputs: &[PathBuf],
    tolerance: f32,
) -> Result<Golden, GoldenError> {
    let x = npy::read(input)?;
    let expected = if outputs.is_empty() {
        run_locally(model, &x)?
    } else {
        outputs
            .iter()
            .map(|p| npy::read(p))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(Golden {
        input: encode(&x, &input.display().to_string())?,
        outputs: expected
            .iter()
            .enumerate()
            .map(|(i, t)| encode(t, &format!("output {i}")))
            .collect::<Result<_, _>>()?,
        tolerance,
    })
}

/// An .npy file of `tensor`, base64.
fn encode(tensor: &Tensor, what: &str) -> Result<String, GoldenError> {
    let bytes = npy::to_bytes(tensor).map_err(|message| GoldenError::Encode {
        what: what.to_string(),
        message,
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Runs `model` once on `x` with tract.
fn run_locally(model: &Path, x: &Tensor) -> Result<Vec<Tensor>, GoldenError> {
    let model_err = |message: String| GoldenError::Model {
        path: model.to_path_buf(),
        message,
    };
    let name = first_input(model).map_err(model_err)?;
    let tract = backend::by_name("tract", &Default::default())
        .ok_or_else(|| model_err("this build has no tract backend".into()))?;
    let options = PrepareOptions {
        overrides: [(name, (None, x.shape().to_vec()))].into(),
        constants: Default::default(),
        threads: Some(1),
    };
    let prepared = tract.prepare(model, &options)?;
    if prepared.inputs().len() != 1 {
        return Err(model_err(format!(
            "the model has {} inputs; outputs are computed here only for one-input models \
             (give them with --golden-output)",
            prepared.inputs().len()
        )));
    }
    Ok(prepared.run(vec![x.clone()])?)
}

/// Name of the model's first graph input that is not an initializer.
pub(in crate::cli) fn first_input(model: &Path) -> Result<String, String> {
    let proto = tract_onnx::onnx()
        .proto_model_for_path(model)
        .map_err(|e| format!("{e:#}"))?;
    let graph = proto.graph.ok_or("the model has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .map(|i| i.name.clone())
        .find(|n| !initializers.contains(n.as_str()))
        .ok_or_else(|| "the model has no inputs".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as _;
    use crate::backend::TractBackend;

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn decode(b64: &str) -> Tensor {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        npy::parse(&bytes).unwrap()
    }

    #[test]
    fn outputs_are_computed_with_tract_on_the_given_input() {
        let model = repo("models/test/vibration-v2.onnx");
        let input = repo("models/test/golden-low.npy");
        let golden = build(&model, &input, &[], 1e-4).unwrap();
        assert_eq!(golden.tolerance, 1e-4);
        let x = decode(&golden.input);
        assert_eq!(x, npy::read(&input).unwrap());
        assert_eq!(golden.outputs.len(), 1);
        let y = decode(&golden.outputs[0]);
        assert_eq!(y.shape(), &[1, 2]);
        let logits = values(&y);
        // 40 °C, 0.5 g: normal (0.01) against alert (0).
        assert_eq!(logits, vec![0.01, 0.0]);
    }

    #[test]
    fn given_outputs_are_sent_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = dir.path().join("wrong.npy");
        let t = Tensor::from_shape(&[1, 2], &[5f32, -5.]).unwrap();
        npy::write(&wrong, &t).unwrap();
        let golden = build(
            &repo("models/vibration.onnx"),
            &repo("models/test/golden-low.npy"),
            std::slice::from_ref(&wrong),
            0.5,
        )
        .unwrap();
        assert_eq!(decode(&golden.outputs[0]), t);
        assert_eq!(golden.tolerance, 0.5);
    }

    #[test]
    fn a_file_that_is_not_a_model_is_an_error() {
        let err = build(
            &repo("models/test/not-a-model.onnx"),
            &repo("models/test/golden-low.npy"),
            &[],
            1e-4,
        )
        .unwrap_err();
        assert!(matches!(err, GoldenError::Model { .. }), "{err}");
    }

    /// The test models behave on tract as models/test/README.md says.
    #[test]
    fn test_models_behave_as_documented_on_tract() {
        let options = PrepareOptions {
            threads: Some(1),
            ..Default::default()
        };
        let features = |t: f32, v: f32| Tensor::from_shape(&[1, 3], &[t, 50., v]).unwrap();
        let logits = |model: &str, x: Tensor| {
            TractBackend
                .prepare(&repo(model), &options)
                .unwrap()
                .run(vec![x])
                .map(|out| values(&out[0]))
        };
        let fails = "models/test/vibration-fails.onnx";
        assert_eq!(logits(fails, features(45., 2.5)).unwrap(), vec![0.01, 5.]);
        let err = logits(fails, features(46., 0.5)).unwrap_err();
        assert!(err.to_string().contains("out of bounds"), "{err}");
        let v1 = "models/vibration.onnx";
        let v2 = "models/test/vibration-v2.onnx";
        let slow = "models/test/vibration-slow.onnx";
        for (t, v) in [(40., 0.5), (55., 0.5), (61., 0.5), (45., 2.5), (69., 2.9)] {
            let reference = logits(v1, features(t, v)).unwrap();
            assert_eq!(logits(slow, features(t, v)).unwrap(), reference);
            let argmax = |l: &[f32]| (l[1] > l[0]) as usize;
            let disagree = t > 50. && t <= 60. && v <= 2.;
            let new = logits(v2, features(t, v)).unwrap();
            assert_eq!(argmax(&new) != argmax(&reference), disagree, "{t} {v}");
        }
        assert!(TractBackend
            .prepare(&repo("models/test/not-a-model.onnx"), &options)
            .is_err());
    }
}
