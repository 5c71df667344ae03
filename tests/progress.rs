//! Progress bars of the long operator commands: drawn on a terminal (here a pseudo-terminal that
//! `script` gives the command), and nothing of them when stderr is a pipe or a log.

use crate::support::*;
use std::process::Command;

/// `edgeinfer record` of `frames` frames from the bundled clip, as a shell command line.
fn record_command(dir: &std::path::Path, frames: u32) -> String {
    let source = write_config(
        dir,
        "source.toml",
        &format!(
            "{}rate = 20.0\nloop = true\n",
            colour_replay_toml(
                "clip",
                "preprocess = { type = \"image\" }\npostprocess = { type = \"raw\" }",
                &repo("config/demo-data/clip.mjpeg"),
            )
        ),
    );
    format!(
        "'{}' record --config '{}' --sensor clip --frames {frames} --out '{}'",
        env!("CARGO_BIN_EXE_edgeinfer"),
        source.display(),
        dir.join("clip.rec").display()
    )
}

#[test]
fn record_draws_a_bar_on_a_terminal_and_none_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let command = record_command(dir.path(), 30);
    let piped = Command::new("sh").args(["-c", &command]).output().unwrap();
    let log = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{log}");
    assert!(log.contains("Recording written"), "{log}");
    assert!(!log.contains("record [") && !log.contains('\r'), "{log}");

    // On a terminal: the bar, and the log lines still there.
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(screen.contains("record ["), "{screen}");
    assert!(screen.contains("/30 frames"), "{screen}");
    assert!(screen.contains("Recording written"), "{screen}");
}

#[test]
fn bench_draws_a_bar_over_its_backends_on_a_terminal_only() {
    let command = format!(
        "'{}' bench --model '{}' --runs 50 --warmup 1",
        env!("CARGO_BIN_EXE_edgeinfer"),
        repo("models/vibration.onnx").display()
    );
    let piped = Command::new("sh").args(["-c", &command]).output().unwrap();
    let log = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.status.success(), "{log}");
    assert!(!log.contains("bench [") && !log.contains('\r'), "{log}");
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains("bench [") && screen.contains("measured, now tract"),
        "{screen}"
    );
    // The table itself is there too.
    assert!(screen.contains("tract"), "{screen}");
}
