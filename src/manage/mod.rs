//! Remote management over MQTT: a retained status with a last will, periodic telemetry, and
//! commands signed by operator keys, answered on a result topic.
//!
//! It runs on a connection of its own (client id `{client_id}-ctl`), so commands and status are
//! never stuck behind a backlog of predictions on a slow link, and it reaches into the rest of
//! the daemon only through the handles in `Context`.

pub mod auth;
mod commands;
mod dispatch;
pub mod ota;
pub mod persist;
mod session;
mod status;
pub mod system;
mod telemetry;

pub use session::Control;

use crate::config::Config;
use crate::model::store::Event;
use crate::outbox::Outbox;
use crate::pipeline::{LatencyWindow, ModelSlot, SensorStats, SlotInfo};
use crate::sensor::Sensors;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::Notify;

/// A model as the daemon runs it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// Id from the config.
    pub id: String,
    /// What serves it now: version, backend, file, trial, shadow.
    #[serde(flatten)]
    pub serving: SlotInfo,
    /// Sensors that feed it.
    pub sensors: Vec<String>,
    /// The last update (installed, activated, committed, rolled back, switched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<Event>,
}

/// A running model, as management reaches it.
pub struct ModelEntry {
    /// Its worker's slot.
    pub slot: Arc<ModelSlot>,
    /// Sensors that feed it.
    pub sensors: Vec<String>,
}

/// What management reads and acts on.
pub struct Context {
    /// The configuration the daemon runs on.
    pub config: Config,
    /// The file it came from, for `get-config` and `set-config`; `None` when not from a file.
    pub config_path: Option<PathBuf>,
    /// Asks the daemon to load its config file again and restart its pipeline on it.
    pub reload: Option<Arc<Notify>>,
    /// Running models, by id.
    pub models: Vec<ModelEntry>,
    /// Model updates; `None` without `[remote]`.
    pub ota: Option<Arc<ota::Ota>>,
    /// Counters of every sensor, by id.
    pub sensor_stats: Vec<(Arc<str>, Arc<SensorStats>)>,
    /// The running sensors.
    pub sensors: Arc<Sensors>,
    /// Inference latencies, by model id.
    pub latencies: Vec<(String, Arc<LatencyWindow>)>,
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// When this configuration started running.
    pub started: Instant,
    /// The same, as wall-clock time.
    pub started_at: SystemTime,
}

impl Context {
    fn device(&self) -> &str {
        &self.config.device.id
    }

    /// Every model as it serves now.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.models
            .iter()
            .map(|m| ModelInfo {
                id: m.slot.id.clone(),
                serving: m.slot.info(),
                sensors: m.sensors.clone(),
                update: self.ota.as_ref().and_then(|o| o.last_event(&m.slot.id)),
            })
            .collect()
    }
}

/// Seconds since the Unix epoch now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
