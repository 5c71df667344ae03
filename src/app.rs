//! The daemon's life under a config file: built and run, and on each reload request (SIGHUP, or a
//! `set-config` command) the file read again and, when valid, the running daemon replaced by one
//! on the new configuration.

use crate::config::Config;
use crate::daemon::{Daemon, Options, Origin, StartError};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Runs the daemon on `config` (read from `path`) until `shutdown`. On `reload` the file is read
/// and validated again: a valid one replaces the running daemon (queued frames drained, outbox
/// flushed, then a fresh start on the new config); an invalid one is reported, every error of
/// it, and the daemon keeps running on the config it has.
pub async fn serve(
    path: &Path,
    mut config: Config,
    shutdown: CancellationToken,
    options: Options,
    reload: Arc<Notify>,
) -> Result<(), StartError> {
    let options = Options {
        origin: Origin {
            config_path: Some(path.to_path_buf()),
            reload: Some(Arc::clone(&reload)),
        },
        ..options
    };
    loop {
        let generation = shutdown.child_token();
        let daemon = Daemon::build(config.clone(), options.clone()).await?;
        let mut running = tokio::spawn(daemon.run(generation.clone()));
        let next = loop {
            tokio::select! {
                result = &mut running => return result?,
                _ = reload.notified() => {
                    info!(config = %path.display(), "Reloading the configuration");
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
        if let Some(n) = &options.notifier {
            n.send("RELOADING=1\nSTATUS=Reloading the configuration");
        }
        generation.cancel();
        running.await??;
        info!("Configuration reloaded; starting again");
        config = next;
    }
}
