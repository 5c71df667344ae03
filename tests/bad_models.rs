//! A model file that is damaged, replaced, or does not fit its pre-processing stops start-up with a
//! clear error naming the model, never a panic.

use crate::support::*;
use std::path::Path;
use std::process::Command;

fn run_with_model(
    dir: &Path,
    model: &Path,
    extra: &str,
    preprocess: &str,
) -> (Option<i32>, String) {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 5);
    let body = format!(
        r#"
[[models]]
id = "vibration"
path = "{}"
{extra}
preprocess = {preprocess}
postprocess = {{ type = "classify" }}
"#,
        model.display(),
    ) + &line_sensor_toml("serial0", "vibration", &readings, None);
    let config = write_config(dir, "edgeinfer.toml", &body);
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RECORD: &str = "{ type = \"record\", fields = [1, 2, 3] }";

#[test]
fn a_model_whose_sha256_differs_from_the_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = format!("sha256 = \"{}\"", "0".repeat(64));
    let (code, err) = run_with_model(dir.path(), &repo("models/vibration.onnx"), &pinned, RECORD);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("vibration") && err.contains("config expects 0000"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn a_truncated_or_garbage_model_file_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(repo("models/tone.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let (code, err) = run_with_model(dir.path(), &truncated, "", RECORD);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tract cannot load"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf \xff\xfe\x00").unwrap();
    let (code, err) = run_with_model(dir.path(), &garbage, "", RECORD);
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn preprocessing_that_does_not_fit_the_model_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The vibration model takes 3 values; select 2.
    let (code, err) = run_with_model(
        dir.path(),
        &repo("models/vibration.onnx"),
        "",
        "{ type = \"record\", fields = [1, 2] }",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("selects 2 fields"), "{err}");
    // Dynamic dimensions without an input_shapes entry are named in the error.
    let (code, err) = run_with_model(dir.path(), &repo("models/colour.onnx"), "", RECORD);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("input_shapes.image"), "{err}");
}
