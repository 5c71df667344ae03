//! Builds the daemon from a `Config` and runs it until shutdown.

use crate::config::{Config, SourceConfig};
use crate::manage::ota::{serving_of, Ota};
use crate::manage::{self, Control};
use crate::metrics;
use crate::model::store::{Event, ModelStore};
use crate::model::ModelError;
use crate::mqtt::Uplink;
use crate::outbox::{Outbox, OutboxError};
use crate::pipeline::{
    FrameQueue, LatencyWindow, ModelSlot, PipelineError, Serving, ServingError, Worker,
};
use crate::sensor::{self, SensorError, Sensors};
use crate::service::{self, Heartbeat, Notifier};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Reports of model changes from the workers waiting for management (a few per update).
const SLOT_EVENTS: usize = 64;

/// How long shutdown waits for sensors, workers and the uplink before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Pre- or post-processing does not fit a model.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Serving(#[from] ServingError),
    /// A sensor could not be opened.
    #[error("sensor \"{sensor}\": {source}")]
    Sensor {
        sensor: String,
        #[source]
        source: SensorError,
    },
    /// A sensor's frames do not fit its model's input.
    #[error("sensor \"{sensor}\": {message}")]
    Mismatch { sensor: String, message: String },
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The MQTT settings are unusable.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The metrics endpoint cannot listen.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
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

impl From<tokio::task::JoinError> for StartError {
    /// A start-up task that panicked or was cancelled.
    fn from(e: tokio::task::JoinError) -> Self {
        StartError::Thread(std::io::Error::other(e))
    }
}

/// Runs the daemon until `shutdown` is cancelled, then stops in order: sensors, workers (finishing
/// frames already queued), uplink (which may still publish what the workers stored), outbox flush.
///
/// With a service manager's `notifier`, it reports `READY=1` once models are loaded and sensors
/// opened, keeps `STATUS=` current, pings the watchdog while the pipeline makes progress, and
/// reports `STOPPING=1` on the way out.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    notifier: Option<Arc<Notifier>>,
    origin: Origin,
) -> Result<(), StartError> {
    crate::backend::configure_onnxruntime(config.onnxruntime.library.clone());
    let data_dir = config.device.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let priorities = config
        .sensors
        .iter()
        .map(|s| (s.id.clone(), s.priority))
        .collect();
    let outbox = Arc::new(Outbox::open_with_priorities(
        &config.outbox_dir(),
        &config.outbox,
        &priorities,
    )?);
    let backlog = outbox.stats();
    info!(
        records = backlog.records,
        bytes = backlog.bytes,
        max_bytes = backlog.max_bytes,
        generations = backlog.generations,
        quarantined = backlog.counters.quarantined,
        "Outbox opened"
    );

    // Bound before anything starts, so a port in use fails start-up cleanly.
    let metrics_listener = match config.metrics.as_ref().and_then(|m| m.address()) {
        Some(addr) => Some(
            metrics::bind(addr)
                .await
                .map_err(|source| StartError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let started = Instant::now();
    let started_at = SystemTime::now();

    // What serves each model: its config's file, or a version installed over the air.
    let store = Arc::new(ModelStore::new(&data_dir));
    let mut models = HashMap::new();
    let mut updates = std::collections::BTreeMap::new();
    for mc in &config.models {
        let started = Instant::now();
        let (cfg, st) = (mc.clone(), Arc::clone(&store));
        let (serving, last) =
            tokio::task::spawn_blocking(move || load_serving(&st, &cfg)).await??;
        let model = &serving.model;
        info!(
            model = %model.id,
            version = %model.version,
            backend = model.backend,
            input = ?model.input().shape,
            load_ms = started.elapsed().as_millis() as u64,
            "Model loaded"
        );
        if let Some(event) = last {
            updates.insert(mc.id.clone(), event);
        }
        models.insert(mc.id.clone(), (serving, FrameQueue::new()));
    }

    // Open every sensor before starting any thread, so a bad one fails start-up cleanly.
    let mut sensors = Vec::new();
    let mut stats_by_model: HashMap<String, HashMap<Arc<str>, _>> = HashMap::new();
    for sc in &config.sensors {
        let (source, settings) = sensor::open(&sc.source).map_err(|source| StartError::Sensor {
            sensor: sc.id.clone(),
            source,
        })?;
        let (serving, queue) = &models[&sc.model];
        let pre = &serving.pre;
        let window = match &sc.source {
            SourceConfig::WavReplay(w) => Some(w.window),
            SourceConfig::Audio(a) => Some(a.window),
            _ => None,
        };
        if let Some(window) = window.filter(|w| *w != pre.input_len()) {
            return Err(StartError::Mismatch {
                sensor: sc.id.clone(),
                message: format!(
                    "window is {window} samples but model \"{}\" takes {}",
                    sc.model,
                    pre.input_len()
                ),
            });
        }
        let id: Arc<str> = sc.id.as_str().into();
        let port = queue.port(Arc::clone(&id), sc.queue);
        stats_by_model
            .entry(sc.model.clone())
            .or_default()
            .insert(Arc::clone(&id), Arc::clone(&port.stats));
        sensors.push((id, sc.source.clone(), source, settings, port));
    }

    let mut workers = Vec::new();
    let mut queues = Vec::new();
    let mut heartbeats = Vec::new();
    let mut entries = Vec::new();
    let mut slots = Vec::new();
    let mut latencies = Vec::new();
    let (slot_events, slot_events_rx) = tokio::sync::mpsc::channel(SLOT_EVENTS);
    for (id, (serving, queue)) in models {
        let latency = Arc::new(LatencyWindow::default());
        latencies.push((id.clone(), Arc::clone(&latency)));
        let (slot, changes) = ModelSlot::new(&serving);
        slots.push(Arc::clone(&slot));
        entries.push(manage::ModelEntry {
            slot: Arc::clone(&slot),
            sensors: config
                .sensors
                .iter()
                .filter(|s| s.model == id)
                .map(|s| s.id.clone())
                .collect(),
        });
        queues.push(Arc::clone(&queue));
        let heartbeat = Arc::new(Heartbeat::default());
        heartbeats.push((id.clone(), Arc::clone(&heartbeat)));
        let worker = Worker {
            device: config.device.id.clone(),
            serving,
            slot,
            changes,
            events: slot_events.clone(),
            queue,
            outbox: Arc::clone(&outbox),
            stats: stats_by_model.remove(&id).unwrap_or_default(),
            log_predictions: config.device.log_predictions,
            heartbeat,
            latency,
        };
        workers.push(worker.spawn()?);
    }
    drop(slot_events);

    // The uplink starts before the sensors, so that what they produce counts as live, not as
    // backlog; it stops last, after the workers have stored their final predictions, so that those
    // still go out while the connection is up.
    let uplink_stop = CancellationToken::new();
    let uplink = match &config.mqtt {
        Some(mqtt) => {
            let uplink = Uplink::new(
                mqtt.clone(),
                config.device.id.clone(),
                Arc::clone(&outbox),
                uplink_stop.clone(),
            )
            .map_err(StartError::Mqtt)?;
            Some(tokio::spawn(uplink.run()))
        }
        None => {
            warn!("No [mqtt] section: predictions are kept in the outbox only");
            None
        }
    };

    let running_sensors = Arc::new(Sensors::new(shutdown.clone()));
    let mut all_stats = Vec::new();
    for (id, source_config, source, settings, port) in sensors {
        all_stats.push((Arc::clone(&id), Arc::clone(&port.stats)));
        running_sensors.start(id, source_config, source, settings, port)?;
    }
    entries.sort_by(|a, b| a.slot.id.cmp(&b.slot.id));
    latencies.sort_by(|a, b| a.0.cmp(&b.0));
    let (notices, notices_rx) = tokio::sync::mpsc::channel(manage::ota::NOTICE_QUEUE);
    let ota = config
        .remote
        .is_some()
        .then(|| Arc::new(Ota::new(&config, &slots, updates, notices)));
    let context = Arc::new(manage::Context {
        config: config.clone(),
        config_path: origin.config_path,
        reload: origin.reload,
        models: entries,
        ota,
        sensor_stats: all_stats.clone(),
        sensors: Arc::clone(&running_sensors),
        latencies,
        outbox: Arc::clone(&outbox),
        started,
        started_at,
    });
    // Management stops with the uplink, so the device reports itself offline last.
    let control = match Control::new(context, uplink_stop.clone(), notices_rx, slot_events_rx) {
        Some(control) => Some(tokio::spawn(control.map_err(StartError::Mqtt)?.run())),
        None => None,
    };
    info!(
        device = %config.device.id,
        models = config.models.len(),
        sensors = config.sensors.len(),
        "Running"
    );
    let metrics_task = metrics_listener.map(|listener| {
        let sources = metrics::Sources {
            device: config.device.id.clone(),
            sensors: all_stats.clone(),
            outbox: Arc::clone(&outbox),
            started,
        };
        tokio::spawn(metrics::serve(
            listener,
            Arc::new(sources),
            shutdown.clone(),
        ))
    });
    let supervisor = notifier.as_ref().map(|n| {
        n.send(&format!(
            "READY=1\nSTATUS=Running: {} models, {} sensors",
            config.models.len(),
            config.sensors.len()
        ));
        if let Some(timeout) = n.watchdog() {
            info!(
                timeout_ms = timeout.as_millis() as u64,
                "Service watchdog enabled"
            );
        }
        tokio::spawn(service::supervise(
            Arc::clone(n),
            heartbeats,
            all_stats.iter().map(|(_, s)| Arc::clone(s)).collect(),
            Arc::clone(&outbox),
            shutdown.clone(),
        ))
    });

    shutdown.cancelled().await;
    info!("Shutting down");
    if let Some(n) = &notifier {
        n.send("STOPPING=1\nSTATUS=Stopping: draining queued frames");
    }
    if let Some(task) = supervisor {
        let _ = task.await;
    }
    // The port is free again once this returns (a reload binds it anew).
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    for q in &queues {
        q.close();
    }
    let sensor_threads = running_sensors.take_threads();
    let joined = tokio::time::timeout(
        STOP_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            for t in sensor_threads {
                let _ = t.join();
            }
            for w in workers {
                if w.thread.join().is_err() {
                    warn!(model = %w.model, "Inference worker panicked");
                }
            }
        }),
    )
    .await;
    if joined.is_err() {
        warn!("Sensors or workers did not stop in time; exiting without them");
    }
    uplink_stop.cancel();
    if let Some(task) = uplink {
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    if let Some(task) = control {
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    // Appends are already on disk; this makes the last acknowledgements durable too, so that
    // nothing delivered is sent again after a clean restart.
    if let Err(e) = outbox.flush() {
        warn!(error = %e, "Final outbox flush failed");
    }
    for (id, stats) in all_stats {
        let t = stats.snapshot();
        info!(
            sensor = %id,
            captured = t.captured,
            dropped = t.dropped,
            inferred = t.inferred,
            errors = t.errors,
            reconnects = t.reconnects,
            overruns = t.overruns,
            "Sensor totals"
        );
    }
    let s = outbox.stats();
    info!(
        records = s.records,
        bytes = s.bytes,
        appended = s.counters.appended,
        acked = s.counters.acked,
        dropped_oldest = s.counters.dropped_oldest,
        dropped_newest = s.counters.dropped_newest,
        thinned = s.counters.thinned,
        expired = s.counters.expired,
        corrupt = s.counters.corrupt,
        undeliverable = s.counters.undeliverable,
        write_errors = s.counters.write_errors,
        quarantined = s.counters.quarantined,
        "Outbox totals"
    );
    Ok(())
}

/// Loads what should serve a model: the version installed over the air that is active, if any
/// (an interrupted trial is rolled back first), else the config's file. An installed version
/// that no longer loads is rolled back to what served before it, so that a damaged file never
/// keeps the daemon from starting. Returns the model and the store's last event for it.
fn load_serving(
    store: &ModelStore,
    config: &crate::config::ModelConfig,
) -> Result<(Serving, Option<Event>), StartError> {
    let effective = match store.effective(config) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(model = %config.id, error = %e, "Installed model versions unreadable; the config's file serves");
            None
        }
    };
    if let Some(event) = effective.as_ref().and_then(|e| e.rolled_back.as_ref()) {
        warn!(model = %config.id, version = %event.version, "A model version on trial was rolled back: the daemon stopped during its trial");
    }
    if let Some(e) = effective.as_ref().filter(|e| e.version.is_some()) {
        let label = e.version.as_ref().and_then(|v| v.label.clone());
        match serving_of(&e.config, label) {
            Ok(serving) => return Ok((serving, store.state(&config.id).ok().and_then(|s| s.last))),
            Err(refusal) => {
                tracing::error!(model = %config.id, path = %e.config.path.display(), reason = %refusal, "Installed model version cannot serve; rolling back");
                if let Ok(Some(previous)) =
                    store.roll_back(&config.id, "not_loadable", &refusal.message)
                {
                    let cfg = store.config_for(config, &previous);
                    if let Ok(serving) = serving_of(&cfg, previous.label.clone()) {
                        return Ok((serving, store.state(&config.id).ok().and_then(|s| s.last)));
                    }
                }
            }
        }
    }
    let serving = Serving::load(config, None)?;
    Ok((serving, store.state(&config.id).ok().and_then(|s| s.last)))
}
