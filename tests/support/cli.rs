//! The `edgeinfer` binary as the operator commands run it, and what a run printed.

use std::process::Output;

/// Runs `edgeinfer` with `args` to the end.
pub fn edgeinfer(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(args)
        .output()
        .unwrap()
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
