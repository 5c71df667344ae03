//! `edgeinfer run --config FILE`: the daemon.

use crate::daemon::Options;
use crate::service::Notifier;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub(super) fn run(path: &Path) -> ExitCode {
    let config = match super::load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    super::logging::set_device(&config.device.id);
    // Inference and sensors have their own threads; the reactor only does I/O and timers.
    let runtime =
        match super::build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2)) {
            Ok(rt) => rt,
            Err(code) => return code,
        };
    let shutdown = CancellationToken::new();
    let notifier = Notifier::from_env().map(Arc::new);
    let options = Options {
        notifier,
        ..Options::default()
    };
    let result = runtime.block_on(async {
        tokio::spawn(wait_for_signal(shutdown.clone()));
        // A `set-config` command asks for a reload the same way a SIGHUP does.
        let reload = Arc::new(tokio::sync::Notify::new());
        forward_hangups(Arc::clone(&reload));
        crate::app::serve(path, config, shutdown, options, reload).await
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

/// Turns every SIGHUP into a reload request. The handler is installed before this returns, so
/// that a SIGHUP arriving while the daemon starts is a reload, not the default action (exit).
fn forward_hangups(reload: Arc<tokio::sync::Notify>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "Cannot watch SIGHUP; reloading is disabled");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            info!(signal = "SIGHUP", "Signal received");
            reload.notify_one();
        }
    });
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
