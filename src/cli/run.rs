//! `edgeinfer run --config FILE`: the daemon.

use crate::config::Config;
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
    // Inference and sensors have their own threads; the reactor only does I/O and timers.
    let runtime =
        match super::build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2)) {
            Ok(rt) => rt,
            Err(code) => return code,
        };
    let shutdown = CancellationToken::new();
    let notifier = Notifier::from_env().map(Arc::new);
    let result = runtime.block_on(async {
        tokio::spawn(wait_for_signal(shutdown.clone()));
        serve(path, config, shutdown, notifier).await
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

/// Runs the daemon until `shutdown`. On SIGHUP (or a `set-config` command) the config file is
/// read and validated again: a valid one replaces the running daemon (queued frames drained, outbox flushed, then a fresh
/// start on the new config); an invalid one is reported, every error of it, and the daemon keeps
/// running on the config it has.
async fn serve(
    path: &Path,
    mut config: Config,
    shutdown: CancellationToken,
    notifier: Option<Arc<Notifier>>,
) -> Result<(), crate::app::StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "Cannot watch SIGHUP; reloading is disabled");
            None
        }
    };
    // A `set-config` command asks for a reload the same way a SIGHUP does.
    let reload = Arc::new(tokio::sync::Notify::new());
    loop {
        let generation = shutdown.child_token();
        let origin = crate::app::Origin {
            config_path: Some(path.to_path_buf()),
            reload: Some(Arc::clone(&reload)),
        };
        let mut app = tokio::spawn(crate::app::run(
            config.clone(),
            generation.clone(),
            notifier.clone(),
            origin,
        ));
        let next = loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut app => {
                    return result?;
                }
                _ = hangup => {
                    info!(config = %path.display(), "SIGHUP: reloading the configuration");
                }
                _ = reload.notified() => {
                    info!(config = %path.display(), "Reloading the configuration on request");
                }
            }
            match Config::load(path) {
                Ok(next) => break next,
                Err(err) => {
                    for line in err.lines() {
                        error!("{line}");
                    }
                    warn!("The new configuration is invalid; keeping the current one");
                }
            }
        };
        if let Some(n) = &notifier {
            n.send("RELOADING=1\nSTATUS=Reloading the configuration");
        }
        generation.cancel();
        app.await??;
        info!("Configuration reloaded; starting again");
        config = next;
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
