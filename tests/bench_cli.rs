//! `edgeinfer bench` measures every available backend in its own process and prints the table with
//! ratios; `--config` adds the per-frame path. Figures are not asserted: only that they are there.

use crate::support::repo;
use std::process::Command;

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn bench_prints_a_row_per_available_backend_with_ratios() {
    let model = repo("models/vibration.onnx");
    let out = bench(&[
        "--model",
        model.to_str().unwrap(),
        "--runs",
        "5",
        "--warmup",
        "1",
    ]);
    let row = |name: &str| {
        out.lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    };
    assert!(row("tract"), "{out}");
    if cfg!(feature = "ort") {
        assert!(row("ort-cpu"), "{out}");
        assert!(out.contains("ratio: median / median of ort-cpu"), "{out}");
    }
}

#[test]
fn bench_with_a_config_measures_the_per_frame_path() {
    let config = repo("config/demo.toml");
    let out = bench(&[
        "--config",
        config.to_str().unwrap(),
        "--model",
        "colour",
        "--backend",
        "tract",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--frame",
        "320x240",
    ]);
    assert!(
        out.contains("tract: per frame") && out.contains("% of inference"),
        "{out}"
    );
}

#[test]
fn bench_reports_an_unknown_backend_and_fails_when_nothing_ran() {
    let model = repo("models/vibration.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args([
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--backend",
            "warp-drive",
            "--runs",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warp-drive") && err.contains("no backend could be measured"),
        "{err}"
    );
}
