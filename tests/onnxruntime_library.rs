//! Which onnxruntime library the daemon loads: `ORT_DYLIB_PATH`, then `[onnxruntime] library`,
//! then a system one, then the copy next to the executable (`../lib/edgeinfer/`, as the package
//! installs it). A library that cannot be used — another architecture, too old, not a library — is
//! refused with a message naming the file and what is wrong; under `auto` the daemon carries on
//! with tract, and a model that names an `ort-*` backend fails start-up.
#![cfg(feature = "ort")]

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The real library the tests run against (scripts/test.sh points `ORT_DYLIB_PATH` at the
/// onnxruntime wheel's).
fn real_library() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .expect("ORT_DYLIB_PATH must name libonnxruntime.so (scripts/test.sh sets it)");
    assert!(path.is_file(), "{}", path.display());
    path
}

/// A file that starts like a shared library built for aarch64 (or, on aarch64, for x86-64): the
/// header is what the daemon reads before it loads anything.
fn foreign_library(dir: &Path) -> (PathBuf, &'static str) {
    let (machine, name): (u16, &str) = if cfg!(target_arch = "aarch64") {
        (62, "x86-64")
    } else {
        (183, "aarch64")
    };
    let mut header = vec![0u8; 4096];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[6] = 1;
    header[16..18].copy_from_slice(&3u16.to_le_bytes()); // shared object
    header[18..20].copy_from_slice(&machine.to_le_bytes());
    let path = dir.join("libonnxruntime.so.1.31.1");
    std::fs::write(&path, header).unwrap();
    (path, name)
}

/// A real shared library that exports `OrtGetApiBase` and says it is onnxruntime 1.16.3, built
/// with the C compiler the build needs anyway.
fn old_library(dir: &Path) -> PathBuf {
    let source = dir.join("old_ort.c");
    std::fs::write(
        &source,
        r#"
typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;
static const void *get_api(unsigned version) { (void)version; return 0; }
static const char *version(void) { return "1.16.3"; }
static const Base base = { get_api, version };
const Base *OrtGetApiBase(void) { return &base; }
"#,
    )
    .unwrap();
    let lib = dir.join("libonnxruntime.so.1.16.3");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("{cc}: {e} (a C compiler is a build prerequisite)"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// The vibration model fed by a replayed readings file, on `backend`, with `extra` TOML at the end.
fn config(dir: &Path, backend: &str, extra: &str) -> PathBuf {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 20);
    LineConfig {
        backend: Some(backend.into()),
        rate: Some(50.0),
        extra: extra.into(),
        ..LineConfig::new(dir, &readings)
    }
    .write(&dir.join("edgeinfer.toml"))
}

/// Starts the daemon without `ORT_DYLIB_PATH` unless `library` is given, waits until its model is
/// loaded or start-up failed, stops it and returns its exit status and log.
fn run_daemon(config: &Path, library: Option<&Path>) -> (Option<i32>, String) {
    let log_path = config.with_extension("log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeinfer"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "edgeinfer=info")
        .env_remove("ORT_DYLIB_PATH")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    if let Some(library) = library {
        command.env("ORT_DYLIB_PATH", library);
    }
    let mut child = command.spawn().unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let exited = wait_until(Duration::from_secs(30), || {
        log().contains("Model loaded") || child.try_wait().unwrap().is_some()
    });
    assert!(exited, "neither loaded nor failed:\n{}", log());
    if child.try_wait().unwrap().is_none() {
        signal(child.id(), "TERM");
    }
    let status = child.wait().unwrap();
    (status.code(), log())
}

/// Warnings that contain `text`: one line says what is wrong with the library, the rest of the
/// log may refer back to it at info level.
fn warnings_naming(log: &str, text: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(" WARN ") && l.contains(text))
        .count()
}

fn model_backend(log: &str) -> Option<&str> {
    let line = log.lines().find(|l| l.contains("Model loaded model="))?;
    let at = line.find(" backend=")? + " backend=".len();
    line[at..]
        .split_whitespace()
        .next()
        .map(|b| b.trim_matches('"'))
}

#[test]
fn a_library_of_another_architecture_is_refused_by_name_and_auto_goes_on_with_tract() {
    let dir = tempfile::tempdir().unwrap();
    let (foreign, arch) = foreign_library(dir.path());
    let expected = format!(
        "ORT_DYLIB_PATH: {}: built for {arch}, but this edgeinfer runs on",
        foreign.display()
    );

    let (code, log) = run_daemon(&config(dir.path(), "auto", ""), Some(&foreign));
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(warnings_naming(&log, &expected), 1, "{log}");
    assert_eq!(model_backend(&log), Some("tract"), "{log}");

    let (code, log) = run_daemon(&config(dir.path(), "ort-cpu", ""), Some(&foreign));
    assert_eq!(
        code,
        Some(1),
        "a named ort-* backend fails start-up:\n{log}"
    );
    assert!(log.contains(&expected), "{log}");
    assert!(model_backend(&log).is_none(), "{log}");
}

#[test]
fn a_library_named_in_the_config_is_checked_the_same_way_and_the_variable_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = old_library(dir.path());
    let section = format!("[onnxruntime]\nlibrary = \"{}\"\n", old.display());
    let expected = format!(
        "[onnxruntime] library: {}: is onnxruntime 1.16.3, but this edgeinfer needs 1.",
        old.display()
    );

    let (code, log) = run_daemon(&config(dir.path(), "auto", &section), None);
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(warnings_naming(&log, &expected), 1, "{log}");
    assert_eq!(model_backend(&log), Some("tract"), "{log}");

    let (code, log) = run_daemon(&config(dir.path(), "ort-cpu", &section), None);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&expected), "{log}");

    // ORT_DYLIB_PATH overrides the key: the real library serves, the old one is never looked at.
    let (code, log) = run_daemon(
        &config(dir.path(), "ort-cpu", &section),
        Some(&real_library()),
    );
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(model_backend(&log), Some("ort-cpu"), "{log}");
    assert!(!log.contains("1.16.3"), "{log}");

    // A good library in the key, and no variable.
    let good = format!(
        "[onnxruntime]\nlibrary = \"{}\"\n",
        real_library().display()
    );
    let (code, log) = run_daemon(&config(dir.path(), "ort-cpu", &good), None);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("onnxruntime loaded") && log.contains("source=[onnxruntime] library"),
        "{log}"
    );
    assert_eq!(model_backend(&log), Some("ort-cpu"), "{log}");
}

/// `edgeinfer infer` of the vibration model on `ort-cpu` with `binary`, outputs into `dir/out`.
fn infer_on_ort(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["infer", "--backend", "ort-cpu", "--model"])
        .arg(repo("models/vibration.onnx"))
        .arg("--input")
        .arg(repo("models/test/golden-low.npy"))
        .arg("--output")
        .arg(dir.join("out"));
    command
}

#[test]
fn files_that_are_not_onnxruntime_are_refused_with_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "not a library").unwrap();
    let libm = [
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists() && p.to_string_lossy().contains(std::env::consts::ARCH))
    .expect("libm of this architecture");
    let missing = dir.path().join("absent/libonnxruntime.so");
    for (file, what) in [
        (&text, "not an ELF shared library"),
        (&libm, "has no OrtGetApiBase, so it is not onnxruntime"),
        (&missing, "no such file"),
    ] {
        let out = infer_on_ort(env!("CARGO_BIN_EXE_edgeinfer").as_ref(), dir.path())
            .env("ORT_DYLIB_PATH", file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("{}: {what}", file.display())),
            "{what}:\n{err}"
        );
    }
}

#[test]
fn an_unpacked_package_finds_its_bundled_library_next_to_the_executable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = root.join("usr/bin/edgeinfer");
    let lib = root.join("usr/lib/edgeinfer");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_edgeinfer"), &bin).unwrap();
    let real = real_library();
    std::fs::copy(&real, lib.join(real.file_name().unwrap())).unwrap();
    let out = infer_on_ort(&bin, dir.path())
        .env_remove("ORT_DYLIB_PATH")
        .env("RUST_LOG", "edgeinfer=info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let loaded = err
        .lines()
        .find(|l| l.contains("onnxruntime loaded"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(loaded.contains("source=bundled"), "{loaded}");
    assert!(
        loaded.contains(&format!("{}", lib.canonicalize().unwrap().display())),
        "{loaded}"
    );
    assert!(dir.path().join("out").read_dir().unwrap().count() > 0);
}
