//! `edgeinfer record` stores a sensor's frames; a `recording` sensor replays them, and the same
//! recording through the same model gives byte-identical predictions, run after run, whatever the
//! pacing (timestamps aside).

use crate::support::*;
use std::process::Command;
use std::time::Duration;

/// The prediction with its three timing fields (capture and inference times, latency) blanked.
fn without_timing(payload: &[u8]) -> String {
    let mut text = String::from_utf8(payload.to_vec()).unwrap();
    for key in ["\"captured_at\":", "\"inferred_at\":", "\"latency_us\":"] {
        let start = text.find(key).unwrap_or_else(|| panic!("{key} in {text}")) + key.len();
        let end = start + text[start..].find([',', '}']).unwrap();
        text.replace_range(start..end, "_");
    }
    text
}

fn replay(dir: &std::path::Path, recording: &std::path::Path, timing: &str) -> Vec<String> {
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let body = format!(
        r#"
[[models]]
id = "colour"
path = "{model}"
input_shapes = {{ image = [1, 3, 64, 64] }}
preprocess = {{ type = "image", resize = [85, 64], crop = [64, 64] }}
postprocess = {{ type = "classify", top_k = 3, labels = "{labels}" }}

[[sensors]]
id = "cam0"
model = "colour"
type = "recording"
path = "{recording}"
timing = "{timing}"

[mqtt]
broker = "{broker}"
"#,
        model = repo("models/colour.onnx").display(),
        labels = repo("models/colour.labels").display(),
        recording = recording.display(),
        broker = broker.url(),
    );
    let config = write_config(dir, "replay.toml", &body);
    let log = run_to_end(&config);
    assert!(log.contains("frames=20"), "{log}");
    assert!(
        wait_until(Duration::from_secs(20), || consumer.count() >= 20),
        "{log}"
    );
    let messages = consumer.messages.lock().unwrap().clone();
    let mut payloads: Vec<(u64, String)> = messages
        .iter()
        .map(|(_, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            (v["frame_seq"].as_u64().unwrap(), without_timing(p))
        })
        .collect();
    payloads.sort();
    payloads.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn a_recording_replays_to_identical_predictions_every_time() {
    let dir = tempfile::tempdir().unwrap();
    // Record 20 frames of the bundled MJPEG clip (10 frames, looped) at 40 frames per second.
    let source = write_config(
        dir.path(),
        "source.toml",
        &format!(
            "{}rate = 40.0\nloop = true\n",
            colour_replay_toml(
                "clip",
                "preprocess = { type = \"image\" }\npostprocess = { type = \"raw\" }",
                &repo("config/demo-data/clip.mjpeg"),
            )
        ),
    );
    let recording = dir.path().join("clip.rec");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["record", "--config"])
        .arg(&source)
        .args(["--sensor", "clip", "--frames", "20", "--out"])
        .arg(&recording)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("frames=20"), "{log}");
    let header = edgeinfer::recording::read_header(&recording).unwrap();
    assert_eq!(header.sensor, "clip");
    assert_eq!(header.source, "image_replay");

    let runs: Vec<Vec<String>> = ["original", "fast", "fast"]
        .iter()
        .enumerate()
        .map(|(i, timing)| {
            let run_dir = dir.path().join(format!("run{i}"));
            std::fs::create_dir(&run_dir).unwrap();
            replay(&run_dir, &recording, timing)
        })
        .collect();
    assert_eq!(runs[0].len(), 20);
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
    // The clip's frames differ, so the predictions do too: the comparison is not vacuous.
    assert_ne!(runs[0][0], runs[0][1]);
}
