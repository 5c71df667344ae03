//! `edgeinfer check-config` reports every problem, with key paths and line numbers, exits 2, and
//! never panics; `print-default-config` prints a config that parses.

use crate::support::repo;
use std::process::Command;

fn edgeinfer(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_reports_every_mistake_across_files_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good_model = repo("models/colour.onnx");
    let first = dir.path().join("first.toml");
    std::fs::write(
        &first,
        format!(
            r#"
[device]
id = "cam-17"
data_dir = "state"
colour = "blue"          # 1: unknown key

[[models]]
id = "colour"
path = "{}"
preprocess = {{ type = "image" }}
postprocess = {{ type = "classify", top_k = "three" }}   # 2: wrong type

[[models]]
id = "other"
path = "missing/model.onnx"                                # 3: missing file
preprocess = {{ type = "record" }}
postprocess = {{ type = "raw" }}

[[sensors]]
id = "cam0"
model = "colour"
type = "image_replay"
path = "{}"

[[sensors]]
id = "mic0"
model = "kws"                                              # 4: dangling model reference
type = "line_replay"
path = "{}"
"#,
            good_model.display(),
            repo("config/demo-data/images").display(),
            repo("config/demo-data/readings.csv").display(),
        ),
    )
    .unwrap();
    let second = dir.path().join("second.toml");
    // 5: bad TOML syntax in a second file (line 3, column 8).
    std::fs::write(&second, "[device]\nid = \"x\"\nbroken = = 1\n").unwrap();

    let (code, out, err) = edgeinfer(&[
        "check-config",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let f = first.display().to_string();
    let expected = [
        format!("{f}: device.colour: unknown field `colour`"),
        format!("{f}: models[0].postprocess: invalid type: string \"three\""),
        format!("{f}: models[1].path: file not found"),
        format!("{f}: sensors[1].model: no model with id \"kws\""),
        format!("{}:3:10: TOML syntax error", second.display()),
    ];
    for want in &expected {
        assert!(
            out.lines().any(|l| l.starts_with(want.as_str())),
            "missing {want:?} in:\n{out}"
        );
    }
    assert!(err.contains("problem(s) found"));
}

#[test]
fn check_config_accepts_the_demo_and_the_default_config_only_lacks_files() {
    let (code, out, _) = edgeinfer(&["check-config", repo("config/demo.toml").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": OK"));

    let (code, default, _) = edgeinfer(&["print-default-config"]);
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, default).unwrap();
    let (code, out, _) = edgeinfer(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    for line in out.lines() {
        assert!(
            line.contains("not found"),
            "default config problem other than a missing file: {line}"
        );
    }
}

#[test]
fn run_refuses_an_invalid_config_with_exit_2_and_a_missing_file_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[device]\nid = \"bad id with spaces\"\ndata_dir = \"s\"\n",
    )
    .unwrap();
    let (code, _, err) = edgeinfer(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("device.id"), "{err}");
    let (code, _, err) = edgeinfer(&["check-config", "/nonexistent/edgeinfer.toml"]);
    assert_eq!(code, 2);
    assert!(!err.contains("panicked"));
}

#[test]
fn every_sensor_type_has_an_example_config_that_check_config_accepts() {
    let mut files = vec![repo("config/demo.toml")];
    let mut examples: Vec<_> = std::fs::read_dir(repo("config/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    files.extend(examples);
    let mut types = std::collections::BTreeSet::new();
    for file in &files {
        let (code, stdout, stderr) = edgeinfer(&["check-config", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}:\n{stdout}{stderr}", file.display());
        let config: toml::Table = std::fs::read_to_string(file).unwrap().parse().unwrap();
        for sensor in config["sensors"].as_array().unwrap() {
            types.insert(sensor["type"].as_str().unwrap().to_string());
        }
    }
    let all = [
        "audio",
        "camera",
        "command",
        "image_replay",
        "line_replay",
        "recording",
        "serial",
        "wav_replay",
    ];
    assert_eq!(types, all.iter().map(|t| t.to_string()).collect());
}

#[test]
fn every_board_profile_fragment_is_a_valid_config_but_for_its_model_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut boards = 0;
    for entry in std::fs::read_dir(repo("targets")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name == "README.md" || !name.ends_with(".md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let fragment = text
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_else(|| panic!("{name} has no ```toml fragment"));
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("[device]\nid = \"board\"\ndata_dir = \"state\"\n\n{fragment}"),
        )
        .unwrap();
        let (_, out, _) = edgeinfer(&["check-config", config.to_str().unwrap()]);
        for line in out.lines().filter(|l| !l.ends_with(": OK")) {
            assert!(
                line.contains("file not found: /etc/edgeinfer/models/"),
                "{name}: {line}"
            );
        }
        boards += 1;
    }
    assert_eq!(boards, 5);
}
