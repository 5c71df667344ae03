//! `edgeinfer check-config FILE...`: every problem in every file, with its key path or line.

use super::EXIT_CONFIG;
use crate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn run(files: &[PathBuf]) -> ExitCode {
    let mut problems = 0;
    for file in files {
        match Config::load(file) {
            Ok(_) => println!("{}: OK", file.display()),
            Err(err) => {
                for line in err.lines() {
                    println!("{line}");
                    problems += 1;
                }
            }
        }
    }
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{problems} problem(s) found");
        ExitCode::from(EXIT_CONFIG)
    }
}
