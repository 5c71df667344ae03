//! `edgeinfer run --config FILE`: the daemon.

use super::EXIT_CONFIG;
use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub(super) fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(err) => {
            for line in err.lines() {
                error!("{line}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Inference and sensors have their own threads; the reactor only does I/O and timers.
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "Cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(wait_for_signal(shutdown.clone()));
        crate::app::run(config, shutdown).await
    });
    // A sensor or worker stuck past the stop timeout must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => {
            info!("Stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "Cannot start");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub(super) async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "Cannot install signal handlers; stop with SIGKILL only");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "Signal received"),
        _ = int.recv() => info!(signal = "SIGINT", "Signal received"),
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
