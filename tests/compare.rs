//! `edgeinfer compare` on a recording of field data: an identical candidate passes the gate, one
//! that disagrees fails it with exactly the frames where the two models differ, one whose inputs
//! do not fit the configured pre-processing is refused, and `fleet rollout --require-compare`
//! refuses a candidate whose report did not pass before anything is sent.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A config replaying the 50 readings of `write_readings` once, and a recording of them.
fn recorded(dir: &Path) -> (PathBuf, PathBuf) {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 50);
    let config = LineConfig::new(dir, &readings).write(&dir.join("edgeinfer.toml"));
    let recording = dir.join("field.rec");
    let out = edgeinfer(&[
        "record",
        "--config",
        s(&config),
        "--sensor",
        "serial0",
        "--out",
        s(&recording),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    (config, recording)
}

fn compare(config: &Path, recording: &Path, candidate: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "compare",
        "--config",
        s(config),
        "--recording",
        s(recording),
        "--candidate",
        s(candidate),
    ];
    args.extend_from_slice(extra);
    edgeinfer(&args)
}

#[test]
fn an_identical_candidate_passes_and_a_disagreeing_one_fails_on_exactly_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recording) = recorded(dir.path());
    let same = compare(
        &config,
        &recording,
        &repo("models/vibration.onnx"),
        &["--min-agreement", "1", "--json"],
    );
    assert!(same.status.success(), "{}", text(&same));
    let report: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(report["frames"], 50, "{report}");
    assert_eq!(report["agreement"], 1.0);
    assert_eq!(report["passed"], true);
    assert_eq!(report["score_diff"]["max_abs"], 0.0);
    assert!(report["latency"]["ratio"].as_f64().unwrap() > 0.0);

    let report_file = dir.path().join("v2.json");
    let v2 = repo("models/test/vibration-v2.onnx");
    let out = compare(
        &config,
        &recording,
        &v2,
        &[
            "--min-agreement",
            "0.98",
            "--show",
            "50",
            "--report",
            s(&report_file),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("FAILED") && table.contains("disagreements"),
        "{table}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    // Row i has temperature 40 + i % 30 and vibration 0.5 + 0.4 * (i % 7); the candidate moves
    // the class boundary for temperatures in (50, 60] with vibration up to 2.
    let expected: Vec<u64> = (0..50u64)
        .filter(|i| {
            let t = 40 + i % 30;
            t > 50 && t <= 60 && i % 7 <= 3
        })
        .collect();
    let frames: Vec<u64> = report["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, expected, "{report}");
    assert_eq!(report["agreed"], 50 - expected.len() as u64);
    assert!(report["score_diff"]["max_abs"].as_f64().unwrap() > 0.0);

    // A rollout that requires a passing comparison refuses this candidate, and a report of
    // another file, before connecting anywhere.
    let key = dir.path().join("operator.key");
    assert!(edgeinfer(&["keygen", "--out", s(&key)]).status.success());
    let rollout = |file: &Path| {
        edgeinfer(&[
            "fleet",
            "rollout",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--key",
            s(&key),
            "--model",
            "vibration",
            "--file",
            s(file),
            "--require-compare",
            s(&report_file),
        ])
    };
    let refused = rollout(&v2);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("failed its comparison"));
    let other = rollout(&repo("models/test/vibration-slow.onnx"));
    assert_eq!(other.status.code(), Some(2), "{}", text(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("compared another file"));
}

#[test]
fn a_candidate_whose_inputs_do_not_fit_the_pre_processing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recording) = recorded(dir.path());
    // An image model where the config feeds three numbers.
    let out = compare(&config, &recording, &repo("models/colour.onnx"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not fit model \"vibration\" as configured"),
        "{stderr}"
    );
    let garbage = compare(
        &config,
        &recording,
        &repo("models/test/not-a-model.onnx"),
        &[],
    );
    assert_eq!(garbage.status.code(), Some(2), "{}", text(&garbage));
    let missing = compare(
        &config,
        &dir.path().join("none.rec"),
        &repo("models/vibration.onnx"),
        &[],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}
