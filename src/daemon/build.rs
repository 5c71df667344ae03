//! Start-up: the data directory, the outbox, the metrics port, the models (as the store says
//! they should serve) and the sensors, in that order, each failure a `StartError`.

use super::{Daemon, LoadedModel, OpenedSensor, Options, StartError};
use crate::config::Config;
use crate::metrics;
use crate::model::store::ModelStore;
use crate::outbox::Outbox;
use crate::pipeline::resolve::load_at_start;
use crate::pipeline::FrameQueue;
use crate::sensor;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::info;

pub(super) async fn build(config: Config, options: Options) -> Result<Daemon, StartError> {
    crate::backend::configure_onnxruntime(config.onnxruntime.library.clone());
    let data_dir = config.device.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let outbox = open_outbox(&config)?;
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
    let store = Arc::new(ModelStore::new(&data_dir));
    let (mut models, updates) = load_models(&config, &store).await?;
    let sensors = open_sensors(&config, &mut models)?;
    Ok(Daemon {
        config,
        options,
        outbox,
        metrics_listener,
        started,
        started_at,
        models,
        updates,
        sensors,
    })
}

fn open_outbox(config: &Config) -> Result<Arc<Outbox>, StartError> {
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
    Ok(outbox)
}

/// What serves each model: its config's file, or a version installed over the air.
async fn load_models(
    config: &Config,
    store: &Arc<ModelStore>,
) -> Result<
    (
        Vec<LoadedModel>,
        BTreeMap<String, crate::model::store::Event>,
    ),
    StartError,
> {
    let mut models = Vec::new();
    let mut updates = BTreeMap::new();
    for mc in &config.models {
        let started = Instant::now();
        let (cfg, st) = (mc.clone(), Arc::clone(store));
        let (serving, last) =
            tokio::task::spawn_blocking(move || load_at_start(&st, &cfg)).await??;
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
        models.push(LoadedModel {
            id: mc.id.clone(),
            serving,
            queue: FrameQueue::new(),
            stats: HashMap::new(),
        });
    }
    Ok((models, updates))
}

/// Opens every sensor before any thread starts, so a bad one fails start-up cleanly.
fn open_sensors(
    config: &Config,
    models: &mut [LoadedModel],
) -> Result<Vec<OpenedSensor>, StartError> {
    let mut sensors = Vec::new();
    for sc in &config.sensors {
        let (source, settings) = sensor::open(&sc.source).map_err(|source| StartError::Sensor {
            sensor: sc.id.clone(),
            source,
        })?;
        let model = models
            .iter_mut()
            .find(|m| m.id == sc.model)
            .expect("validation checks that every sensor's model exists");
        let input_len = model.serving.pre.input_len();
        if let Some(window) = sc.source.facts().window().filter(|w| *w != input_len) {
            return Err(StartError::Mismatch {
                sensor: sc.id.clone(),
                message: format!(
                    "window is {window} samples but model \"{}\" takes {input_len}",
                    sc.model
                ),
            });
        }
        let id: Arc<str> = sc.id.as_str().into();
        let port = model.queue.port(Arc::clone(&id), sc.queue);
        model.stats.insert(Arc::clone(&id), Arc::clone(&port.stats));
        sensors.push(OpenedSensor {
            id,
            config: sc.source.clone(),
            source,
            settings,
            port,
        });
    }
    Ok(sensors)
}
