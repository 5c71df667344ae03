use std::process::ExitCode;

fn main() -> ExitCode {
    edgeinfer::cli::main()
}
