//! A started daemon: its threads and tasks, and the order they stop in.

use super::{Daemon, LoadedModel, Options, StartError};
use crate::config::Config;
use crate::homeassistant::HomeAssistant;
use crate::manage::ota::{Ota, NOTICE_QUEUE};
use crate::manage::{self, Control};
use crate::metrics;
use crate::mqtt::Uplink;
use crate::outbox::Outbox;
use crate::pipeline::{
    FrameQueue, Heartbeat, LatencyWindow, ModelSlot, SensorStats, SlotEvent, Worker, WorkerHandle,
};
use crate::sensor::Sensors;
use crate::service::{self, Notifier};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Reports of model changes from the workers waiting for management (a few per update).
const SLOT_EVENTS: usize = 64;

/// How long stopping waits for sensors, workers and the uplink before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running daemon. Dropping it without [`Running::stop`] leaves its threads running until the
/// shutdown token given to [`Daemon::start`] is cancelled.
pub struct Running {
    /// Cancelled by `stop`; a child of the token `start` was given.
    stop: CancellationToken,
    notifier: Option<Arc<Notifier>>,
    queues: Vec<Arc<FrameQueue>>,
    workers: Vec<WorkerHandle>,
    sensors: Arc<Sensors>,
    sensor_stats: Vec<(Arc<str>, Arc<SensorStats>)>,
    outbox: Arc<Outbox>,
    /// The MQTT connections stop last, after the workers have stored their final predictions.
    uplink_stop: CancellationToken,
    uplink: Option<JoinHandle<()>>,
    control: Option<JoinHandle<()>>,
    homeassistant: Option<JoinHandle<()>>,
    metrics: Option<JoinHandle<()>>,
    supervisor: Option<JoinHandle<()>>,
}

/// The inference workers, one per model, and what the rest of the daemon needs of them.
#[derive(Default)]
struct Workers {
    queues: Vec<Arc<FrameQueue>>,
    handles: Vec<WorkerHandle>,
    heartbeats: Vec<(String, Arc<Heartbeat>)>,
    entries: Vec<manage::ModelEntry>,
    slots: Vec<Arc<ModelSlot>>,
    latencies: Vec<(String, Arc<LatencyWindow>)>,
}

impl Daemon {
    /// Starts the workers, the uplink, the sensors, management, the metrics endpoint and the
    /// watchdog supervisor. Everything stops when `shutdown` is cancelled or `stop` is called.
    ///
    /// With a service manager's notifier, it reports `READY=1`, keeps `STATUS=` current and pings
    /// the watchdog while the pipeline makes progress.
    pub fn start(self, shutdown: &CancellationToken) -> Result<Running, StartError> {
        let stop = shutdown.child_token();
        let (slot_events, slot_events_rx) = tokio::sync::mpsc::channel(SLOT_EVENTS);
        let mut workers = spawn_workers(
            &self.config,
            &self.options,
            &self.outbox,
            self.models,
            slot_events,
        )?;
        // The uplink starts before the sensors, so that what they produce counts as live, not as
        // backlog. It and management stop last, after the workers have stored their final
        // predictions, so the device reports itself offline last.
        let uplink_stop = CancellationToken::new();
        let uplink = start_uplink(&self.config, &self.outbox, &uplink_stop)?;
        let running_sensors = Arc::new(Sensors::new(stop.clone()));
        let mut sensor_stats = Vec::new();
        for s in self.sensors {
            sensor_stats.push((Arc::clone(&s.id), Arc::clone(&s.port.stats)));
            running_sensors.start(s.id, s.config, s.source, s.settings, s.port)?;
        }
        let (notices, notices_rx) = tokio::sync::mpsc::channel(NOTICE_QUEUE);
        let ota = self.config.remote.is_some().then(|| {
            Arc::new(Ota::new(
                &self.config,
                &workers.slots,
                self.updates,
                notices,
            ))
        });
        let context = Arc::new(manage::Context {
            config: self.config.clone(),
            config_path: self.options.origin.config_path.clone(),
            reload: self.options.origin.reload.clone(),
            models: std::mem::take(&mut workers.entries),
            ota,
            sensor_stats: sensor_stats.clone(),
            sensors: Arc::clone(&running_sensors),
            latencies: std::mem::take(&mut workers.latencies),
            outbox: Arc::clone(&self.outbox),
            started: self.started,
            started_at: self.started_at,
        });
        let control = match Control::new(context, uplink_stop.clone(), notices_rx, slot_events_rx) {
            Some(control) => Some(tokio::spawn(control.map_err(StartError::Mqtt)?.run())),
            None => None,
        };
        let homeassistant =
            match HomeAssistant::new(&self.config, &sensor_stats, uplink_stop.clone()) {
                Some(ha) => Some(tokio::spawn(ha.map_err(StartError::Mqtt)?.run())),
                None => None,
            };
        info!(
            device = %self.config.device.id,
            models = self.config.models.len(),
            sensors = self.config.sensors.len(),
            "Running"
        );
        // Loading and optimising the models freed far more than they keep.
        crate::memory::return_freed();
        let metrics = self.metrics_listener.map(|listener| {
            let sources = metrics::Sources {
                device: self.config.device.id.clone(),
                sensors: sensor_stats.clone(),
                outbox: Arc::clone(&self.outbox),
                started: self.started,
            };
            tokio::spawn(metrics::serve(listener, Arc::new(sources), stop.clone()))
        });
        let supervisor = self.options.notifier.as_ref().map(|n| {
            start_supervisor(
                n,
                &self.config,
                workers.heartbeats,
                &sensor_stats,
                &self.outbox,
                &stop,
            )
        });
        Ok(Running {
            stop,
            notifier: self.options.notifier,
            queues: workers.queues,
            workers: workers.handles,
            sensors: running_sensors,
            sensor_stats,
            outbox: self.outbox,
            uplink_stop,
            uplink,
            control,
            homeassistant,
            metrics,
            supervisor,
        })
    }
}

/// One inference worker per model, each on its own thread, with the slot management sees it by.
fn spawn_workers(
    config: &Config,
    options: &Options,
    outbox: &Arc<Outbox>,
    models: Vec<LoadedModel>,
    events: tokio::sync::mpsc::Sender<SlotEvent>,
) -> Result<Workers, StartError> {
    let mut w = Workers::default();
    for model in models {
        let latency = Arc::new(LatencyWindow::default());
        w.latencies.push((model.id.clone(), Arc::clone(&latency)));
        let (slot, changes) = ModelSlot::new(&model.serving);
        w.slots.push(Arc::clone(&slot));
        w.entries.push(manage::ModelEntry {
            slot: Arc::clone(&slot),
            sensors: config
                .sensors
                .iter()
                .filter(|s| s.model == model.id)
                .map(|s| s.id.clone())
                .collect(),
        });
        w.queues.push(Arc::clone(&model.queue));
        let heartbeat = Arc::new(Heartbeat::default());
        w.heartbeats
            .push((model.id.clone(), Arc::clone(&heartbeat)));
        let worker = Worker {
            device: config.device.id.clone(),
            serving: model.serving,
            slot,
            changes,
            events: events.clone(),
            queue: model.queue,
            outbox: Arc::clone(outbox),
            stats: model.stats,
            log_predictions: config.device.log_predictions,
            keep_latest: config.homeassistant.as_ref().is_some_and(|h| h.enabled),
            heartbeat,
            latency,
            frame_hook: options.frame_hook.clone(),
        };
        w.handles.push(worker.spawn()?);
    }
    w.entries.sort_by(|a, b| a.slot.id.cmp(&b.slot.id));
    w.latencies.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(w)
}

fn start_uplink(
    config: &Config,
    outbox: &Arc<Outbox>,
    stop: &CancellationToken,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(mqtt) = &config.mqtt else {
        warn!("No [mqtt] section: predictions are kept in the outbox only");
        return Ok(None);
    };
    let uplink = Uplink::new(
        mqtt.clone(),
        config.device.id.clone(),
        Arc::clone(outbox),
        stop.clone(),
    )
    .map_err(StartError::Mqtt)?;
    Ok(Some(tokio::spawn(uplink.run())))
}

/// Tells the service manager the daemon is ready and keeps pinging its watchdog while the
/// workers make progress.
fn start_supervisor(
    notifier: &Arc<Notifier>,
    config: &Config,
    heartbeats: Vec<(String, Arc<Heartbeat>)>,
    sensor_stats: &[(Arc<str>, Arc<SensorStats>)],
    outbox: &Arc<Outbox>,
    stop: &CancellationToken,
) -> JoinHandle<()> {
    notifier.send(&format!(
        "READY=1\nSTATUS=Running: {} models, {} sensors",
        config.models.len(),
        config.sensors.len()
    ));
    if let Some(timeout) = notifier.watchdog() {
        info!(
            timeout_ms = timeout.as_millis() as u64,
            "Service watchdog enabled"
        );
    }
    tokio::spawn(service::supervise(
        Arc::clone(notifier),
        heartbeats,
        sensor_stats.iter().map(|(_, s)| Arc::clone(s)).collect(),
        Arc::clone(outbox),
        stop.clone(),
    ))
}

impl Running {
    /// The outbox predictions are stored in.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Counters of every sensor, by id.
    pub fn sensor_stats(&self) -> &[(Arc<str>, Arc<SensorStats>)] {
        &self.sensor_stats
    }

    /// Stops in order: sensors, workers (finishing frames already queued), uplink and management
    /// (which may still publish what the workers stored), outbox flush; then logs the totals.
    pub async fn stop(self) {
        info!("Shutting down");
        self.stop.cancel();
        if let Some(n) = &self.notifier {
            n.send("STOPPING=1\nSTATUS=Stopping: draining queued frames");
        }
        if let Some(task) = self.supervisor {
            let _ = task.await;
        }
        // The port is free again once this returns (a reload binds it anew).
        if let Some(task) = self.metrics {
            let _ = task.await;
        }
        for q in &self.queues {
            q.close();
        }
        let sensor_threads = self.sensors.take_threads();
        let workers = self.workers;
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
        self.uplink_stop.cancel();
        for task in [self.uplink, self.control, self.homeassistant]
            .into_iter()
            .flatten()
        {
            let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
        }
        // Appends are already on disk; this makes the last acknowledgements durable too, so that
        // nothing delivered is sent again after a clean restart.
        if let Err(e) = self.outbox.flush() {
            warn!(error = %e, "Final outbox flush failed");
        }
        log_totals(&self.sensor_stats, &self.outbox);
    }
}

fn log_totals(sensors: &[(Arc<str>, Arc<SensorStats>)], outbox: &Outbox) {
    for (id, stats) in sensors {
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
}
