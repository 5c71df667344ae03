//! `edgeinfer infer` on real pretrained models (fetched from pinned PyPI wheels by
//! scripts/fetch-models.sh) gives the same outputs as onnxruntime, to a relative error under 1e-4.
//!
//! Relative error of an output = max |tract - ort| / max |ort| (the ∞-norm of the difference over
//! the ∞-norm of the reference), which stays meaningful where individual values are near zero.

mod support;

use edgeinfer::npy;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::repo;
use tract_onnx::prelude::Tensor;

const MAX_RELATIVE_ERROR: f32 = 1e-4;

fn fetched(name: &str) -> PathBuf {
    let dir = std::env::var_os("EDGEINFER_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("models/fetched"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Deterministic pseudo-random values in [lo, hi) (a 64-bit LCG), so runs are repeatable.
fn input(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_shape(shape, &data).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    let t = t.cast_to::<f32>().unwrap();
    t.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// Runs both engines on the same inputs and compares every output.
fn compare(model: &Path, inputs: &[(&str, Tensor)]) -> Vec<(String, f32)> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (name, tensor) in inputs {
        let path = dir.path().join(format!("{name}.npy"));
        npy::write(&path, tensor).unwrap();
        args.push(format!("{name}={}", path.display()));
    }
    let (ours, theirs) = (dir.path().join("tract"), dir.path().join("ort"));
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("infer")
        .arg("--model")
        .arg(model)
        .args(args.iter().flat_map(|a| ["--input", a.as_str()]))
        .arg("--output")
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edgeinfer infer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = Command::new("python3")
        .arg(repo("scripts/ort_reference.py"))
        .arg(model)
        .arg(&theirs)
        .args(&args)
        .output()
        .expect("python3 is needed for the onnxruntime reference");
    assert!(
        reference.status.success(),
        "onnxruntime reference failed (pip install -r scripts/requirements.txt): {}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let mut results = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&theirs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for ref_path in names {
        let file = ref_path.file_name().unwrap();
        let ort = npy::read(&ref_path).unwrap();
        let tract = npy::read(&ours.join(file))
            .unwrap_or_else(|e| panic!("edgeinfer wrote no {file:?}: {e}"));
        assert_eq!(tract.shape(), ort.shape(), "{file:?}");
        let (a, b) = (values(&tract), values(&ort));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let scale = b
            .iter()
            .map(|y| y.abs())
            .fold(0f32, f32::max)
            .max(f32::MIN_POSITIVE);
        let rel = diff / scale;
        assert!(
            rel.is_finite() && rel < MAX_RELATIVE_ERROR,
            "{file:?}: relative error {rel:e}"
        );
        results.push((file.to_string_lossy().into_owned(), rel));
    }
    eprintln!("{}: {results:?}", model.display());
    results
}

#[test]
fn pp_ocr_v4_text_detector_matches_onnxruntime_on_a_dynamic_input_shape() {
    let model = fetched("ch_PP-OCRv4_det_infer.onnx");
    let r = compare(&model, &[("x", input(&[1, 3, 160, 224], 1, -1.0, 1.0))]);
    assert_eq!(r.len(), 1);
}

#[test]
fn pp_ocr_direction_classifier_matches_onnxruntime() {
    let model = fetched("ch_ppocr_mobile_v2.0_cls_mobile.onnx");
    compare(&model, &[("x", input(&[1, 3, 48, 192], 2, -1.0, 1.0))]);
}

#[test]
fn silero_vad_with_two_inputs_and_two_outputs_matches_onnxruntime() {
    let model = fetched("silero_vad_openvino_16k.onnx");
    let r = compare(
        &model,
        &[
            ("input", input(&[1, 576], 3, -0.5, 0.5)),
            ("state", input(&[2, 1, 128], 4, -0.1, 0.1)),
        ],
    );
    assert_eq!(r.len(), 2);
}

#[test]
fn infer_reports_bad_inputs_clearly() {
    let model = repo("models/vibration.onnx");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    std::fs::write(&bad, b"not numpy at all").unwrap();
    let run = |input: String| {
        Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
            .args(["infer", "--model"])
            .arg(&model)
            .args(["--input", &input, "--output"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let out = run(format!("features={}", bad.display()));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad magic"));
    let good = dir.path().join("good.npy");
    npy::write(&good, &input(&[1, 3], 5, 0.0, 1.0)).unwrap();
    let out = run(format!("nope={}", good.display()));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no input \"nope\""));
    let out = run(format!("features={}", good.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("out/logits.npy").exists());
}
