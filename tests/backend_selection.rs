//! Backend selection in the daemon: `auto` falls back to the next backend when one cannot load a
//! model (with the reason logged), and a backend named explicitly that cannot run is a start-up
//! error, never a silent fallback.

use crate::support::*;
use std::path::Path;
use std::process::Command;

fn vad_config(dir: &Path, backend: &str) -> std::path::PathBuf {
    let body = format!(
        r#"
[[models]]
id = "vad"
path = "{model}"
backend = "{backend}"
input_shapes = {{ input = [1, 512], state = [2, 1, 128] }}
constant_inputs = {{ sr = 16000 }}
recurrent_inputs = {{ state = "stateN" }}
preprocess = {{ type = "audio" }}
postprocess = {{ type = "raw", outputs = ["output"], max_values = 1 }}

[[sensors]]
id = "mic0"
model = "vad"
type = "wav_replay"
path = "{wav}"
window = 512
hop = 512
"#,
        model = repo("models/fetched/silero_vad.onnx").display(),
        wav = repo("config/demo-data/tones.wav").display(),
    );
    write_config(dir, "vad.toml", &body)
}

#[test]
fn a_named_backend_that_cannot_run_here_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = vad_config(dir.path(), "ort-tensorrt");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("backend \"ort-tensorrt\" is not available"),
        "{err}"
    );
    assert!(
        !err.contains("Running"),
        "must not fall back silently: {err}"
    );
}

/// Silero VAD probabilities for 512-sample windows of `wav`, from onnxruntime in Python: with the
/// state carried from window to window, as the daemon's recurrent inputs do, and (second) with a
/// fresh zero state for every window.
#[cfg(feature = "ort")]
fn python_vad(model: &Path, wav: &Path) -> (Vec<f32>, Vec<f32>) {
    let script = r#"
import sys, wave, json
import numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
w = wave.open(sys.argv[2])
x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
zero = np.zeros((2, 1, 128), dtype=np.float32)
state = zero
sr = np.array(16000, dtype=np.int64)
carried, fresh = [], []
for i in range(0, len(x) - 511, 512):
    window = x[i:i + 512][None, :]
    p, state = s.run(None, {"input": window, "state": state, "sr": sr})
    carried.append(float(p.reshape(-1)[0]))
    q, _ = s.run(None, {"input": window, "state": zero, "sr": sr})
    fresh.append(float(q.reshape(-1)[0]))
print(json.dumps([carried, fresh]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(model)
        .arg(wav)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[cfg(feature = "ort")]
#[test]
fn auto_falls_back_from_tract_to_onnxruntime_for_silero_vad_and_carries_its_state() {
    use edgeinfer::config::OutboxConfig;
    use edgeinfer::outbox::Outbox;
    use edgeinfer::prediction::Prediction;

    let dir = tempfile::tempdir().unwrap();
    let config = vad_config(dir.path(), "auto");
    let log = run_to_end(&config);
    // tract was tried and refused the model; onnxruntime took it.
    assert!(
        log.contains("Backend cannot load the model; trying the next one"),
        "{log}"
    );
    assert!(log.contains("backend=\"tract\""), "{log}");
    assert!(log.contains("Model loaded on a fallback backend"), "{log}");
    assert!(log.contains("backend=\"ort-cpu\""), "{log}");

    let ob = Outbox::open(&dir.path().join("state/outbox"), &OutboxConfig::default()).unwrap();
    let mut predictions: Vec<Prediction> = ob
        .pending(&mut edgeinfer::outbox::Cursor::all(), 10_000)
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    predictions.sort_by_key(|p| p.frame_seq);
    let ours: Vec<f32> = predictions
        .iter()
        .map(|p| {
            let v = serde_json::to_value(&p.result).unwrap();
            v["outputs"]["output"]["values"][0].as_f64().unwrap() as f32
        })
        .collect();
    let (reference, stateless) = python_vad(
        &repo("models/fetched/silero_vad.onnx"),
        &repo("config/demo-data/tones.wav"),
    );
    assert_eq!(ours.len(), reference.len());
    for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "window {i}: daemon {a}, onnxruntime {b}"
        );
    }
    // The comparison can tell: without the carried state the probabilities are different.
    let differs = reference
        .iter()
        .zip(&stateless)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(differs, "state has no visible effect on this input");
}

#[test]
fn auto_tune_times_every_available_backend_and_keeps_the_fastest() {
    let dir = tempfile::tempdir().unwrap();
    let body = colour_replay_toml(
        "cam0",
        "auto_tune = true\npreprocess = { type = \"image\" }\npostprocess = { type = \"classify\" }",
        &repo("config/demo-data/images"),
    );
    let config = write_config(dir.path(), "tune.toml", &body);
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(std::time::Duration::from_secs(30), || daemon
            .log_contains("Running")),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(daemon
        .terminate(std::time::Duration::from_secs(10))
        .success());
    let timed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Backend timing"))
        .collect();
    let expected = if cfg!(feature = "ort") { 2 } else { 1 };
    assert_eq!(timed.len(), expected, "{log}");
    assert!(
        timed.iter().any(|l| l.contains("backend=\"tract\"")),
        "{log}"
    );
    assert!(log.contains("Fastest backend kept"), "{log}");
}

#[cfg(feature = "ort")]
#[test]
fn infer_with_auto_runs_a_model_tract_cannot_load_on_onnxruntime_and_says_so() {
    use tract_onnx::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, t: Tensor| {
        let path = dir.path().join(format!("{name}.npy"));
        edgeinfer::npy::write(&path, &t).unwrap();
        format!("{name}={}", path.display())
    };
    let input = write("input", Tensor::zero::<f32>(&[1, 512]).unwrap());
    let state = write("state", Tensor::zero::<f32>(&[2, 1, 128]).unwrap());
    let sr = write("sr", tensor0(16000i64));
    let out_dir = dir.path().join("out");
    let model = repo("models/fetched/silero_vad.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["infer", "--backend", "auto", "--model"])
        .arg(&model)
        .args([
            "--input", &input, "--input", &state, "--input", &sr, "--output",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The daemon's order: tract first, which refuses the model, then onnxruntime on the CPU.
    assert!(err.contains("backend auto: ort-cpu (passed over"), "{err}");
    assert!(err.contains("tract: "), "{err}");
    assert!(
        err.contains("inference took") && err.contains("(ort-cpu)"),
        "{err}"
    );
    let p = edgeinfer::npy::read(&out_dir.join("output.npy")).unwrap();
    let p: Vec<f32> = p
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    assert!(p.len() == 1 && (0.0..=1.0).contains(&p[0]), "{p:?}");
}
