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

/// What `command` writes when its stderr is a pipe (stderr), and on a terminal (the screen),
/// each run to a successful end.
fn piped_and_on_a_terminal(command: &str) -> (String, String) {
    let piped = Command::new("sh").args(["-c", command]).output().unwrap();
    let log = String::from_utf8_lossy(&piped.stderr).into_owned();
    assert!(piped.status.success(), "{log}");
    let tty = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout).into_owned();
    assert!(tty.status.success(), "{screen}");
    (log, screen)
}

#[test]
fn record_draws_a_bar_on_a_terminal_and_none_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (log, screen) = piped_and_on_a_terminal(&record_command(dir.path(), 30));
    assert!(log.contains("Recording written"), "{log}");
    assert!(!log.contains("record [") && !log.contains('\r'), "{log}");
    // On a terminal: the bar, and the log lines still there.
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
    let (log, screen) = piped_and_on_a_terminal(&command);
    assert!(!log.contains("bench [") && !log.contains('\r'), "{log}");
    assert!(
        screen.contains("bench [") && screen.contains("measured, now tract"),
        "{screen}"
    );
    // The table itself is there too.
    assert!(screen.contains("tract"), "{screen}");
}
