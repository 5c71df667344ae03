//! The daemon for one configuration: [`Daemon::build`] does everything that can fail at start-up
//! (outbox, metrics port, models, sensors); [`Daemon::start`] starts the threads and tasks;
//! [`Running::stop`] stops them in order. [`Daemon::run`] is the three in a row, until a shutdown
//! token is cancelled. Reloading (a new `Daemon` on a new configuration) is `app`'s.

mod build;
mod error;
mod running;

pub use error::StartError;
pub use running::Running;

use crate::config::Config;
use crate::config::SourceConfig;
use crate::model::store::Event;
use crate::outbox::Outbox;
use crate::pipeline::{FrameHook, FrameQueue, SensorPort, SensorStats, Serving};
use crate::sensor::{CaptureSettings, FrameSource};
use crate::service::Notifier;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the daemon is given besides its configuration.
#[derive(Clone, Default)]
pub struct Options {
    /// The service manager to tell about readiness, status and progress (systemd's
    /// `sd_notify`); `None` when not run by one.
    pub notifier: Option<Arc<Notifier>>,
    /// Where the configuration came from, for remote management.
    pub origin: Origin,
    /// Called by every inference worker before each frame; see [`FrameHook`].
    pub frame_hook: Option<FrameHook>,
}

/// Where the running config came from, for remote management (`get-config`, `set-config`).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The config file.
    pub config_path: Option<PathBuf>,
    /// Notified to have the config file loaded again and the daemon restarted on it (as on
    /// SIGHUP).
    pub reload: Option<Arc<Notify>>,
}

/// A daemon built and ready to start: its outbox open, its models loaded and its sensors opened.
pub struct Daemon {
    config: Config,
    options: Options,
    outbox: Arc<Outbox>,
    metrics_listener: Option<tokio::net::TcpListener>,
    started: Instant,
    started_at: SystemTime,
    models: Vec<LoadedModel>,
    /// The model store's last event per model, for management.
    updates: BTreeMap<String, Event>,
    sensors: Vec<OpenedSensor>,
}

/// A model ready to serve, with the queue its sensors feed.
struct LoadedModel {
    id: String,
    serving: Serving,
    queue: Arc<FrameQueue>,
    /// Counters of the sensors feeding it.
    stats: HashMap<Arc<str>, Arc<SensorStats>>,
}

/// A sensor opened (files) or ready to open (devices), with its port into its model's queue.
struct OpenedSensor {
    id: Arc<str>,
    config: SourceConfig,
    source: Box<dyn FrameSource>,
    settings: CaptureSettings,
    port: SensorPort,
}

impl Daemon {
    /// Builds the daemon for `config`: everything that can fail at start-up, before any thread
    /// starts, so that a bad model, sensor or port fails cleanly.
    pub async fn build(config: Config, options: Options) -> Result<Daemon, StartError> {
        build::build(config, options).await
    }

    /// The outbox, open.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Runs until `shutdown` is cancelled, then stops in order (see [`Running::stop`]).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StartError> {
        let running = self.start(&shutdown)?;
        shutdown.cancelled().await;
        running.stop().await;
        Ok(())
    }
}
