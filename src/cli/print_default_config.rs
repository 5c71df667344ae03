//! `edgeinfer print-default-config`.

use crate::config::DEFAULT_CONFIG;
use std::process::ExitCode;

pub(super) fn run() -> ExitCode {
    print!("{DEFAULT_CONFIG}");
    ExitCode::SUCCESS
}
