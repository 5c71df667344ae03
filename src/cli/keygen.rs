//! `edgeinfer keygen --out FILE`: a new operator key pair for signing commands.

use super::EXIT_CONFIG;
use crate::manage::auth;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::error;

/// Arguments of `edgeinfer keygen`.
#[derive(Args)]
pub(super) struct KeygenArgs {
    /// Private key file to write (mode 0600; refused if it exists). The public key goes to
    /// FILE.pub and to standard output, for `remote.operator_keys`.
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn run(args: &KeygenArgs) -> ExitCode {
    let key = match auth::generate_key() {
        Ok(k) => k,
        Err(e) => {
            error!(error = %e, "No random numbers from the system");
            return ExitCode::FAILURE;
        }
    };
    let public = auth::public_key_text(&key.verifying_key());
    let written = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&args.out)?;
        writeln!(f, "{}", auth::signing_key_text(&key))?;
        f.sync_all()?;
        let mut pub_path = args.out.as_os_str().to_os_string();
        pub_path.push(".pub");
        std::fs::write(pub_path, format!("{public}\n"))
    })();
    if let Err(e) = written {
        error!(file = %args.out.display(), error = %e, "Cannot write the key");
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("{public}");
    ExitCode::SUCCESS
}
