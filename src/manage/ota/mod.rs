//! Model updates over MQTT: a signed manifest, chunks written to a staging file that survives
//! restarts, verification (size, sha256, the backend loading it, a golden input), then
//! installation beside the running version and a trial that commits or rolls back; and the
//! `activate-model` / `rollback-model` commands, which work on the same installed versions.

mod activation;
mod finished;
pub mod protocol;
mod transfer;
mod verify;

pub use verify::Refusal;

use crate::config::{Config, ModelConfig, OtaConfig};
use crate::model::store::{Event, ModelStore, Version};
use crate::pipeline::{
    Change, ModelSlot, Serving, ServingError, SlotEvent, SlotEventKind, TrialPolicy,
};
use finished::Finished;
use protocol::{Activation, Manifest, Progress, State};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use transfer::Transfers;

/// What management publishes on behalf of updates.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// On the transfer's progress topic.
    Progress(Progress),
    /// What serves changed: publish the status again.
    StatusChanged,
}

/// Notices waiting for the management connection. When full, the sender waits (updates are
/// rare; the status topic carries the outcome anyway).
pub const NOTICE_QUEUE: usize = 64;

/// Model updates of one daemon.
pub struct Ota {
    data_dir: PathBuf,
    store: ModelStore,
    models: HashMap<String, (ModelConfig, Arc<ModelSlot>)>,
    settings: OtaConfig,
    transfers: Mutex<Transfers>,
    /// Transfers being verified, which take no more chunks.
    verifying: Mutex<HashSet<String>>,
    /// Last update event per model, for the status.
    last: Mutex<BTreeMap<String, Event>>,
    /// Transfers past verification, so that a sender that sends the manifest again is told
    /// where its transfer stands instead of starting over.
    finished: Mutex<Finished>,
    notices: mpsc::Sender<Notice>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ota {
    /// Updates for the models of `config`, served through `slots`; transfers left by an
    /// earlier run are picked up. `last` is what the model store last recorded per model.
    pub fn new(
        config: &Config,
        slots: &[Arc<ModelSlot>],
        last: BTreeMap<String, Event>,
        notices: mpsc::Sender<Notice>,
    ) -> Self {
        let data_dir = &config.device.data_dir;
        let models = config
            .models
            .iter()
            .filter_map(|m| {
                let slot = slots.iter().find(|s| s.id == m.id)?;
                Some((m.id.clone(), (m.clone(), Arc::clone(slot))))
            })
            .collect();
        let settings = config
            .remote
            .as_ref()
            .map(|r| r.ota.clone())
            .unwrap_or_default();
        Self {
            data_dir: data_dir.clone(),
            store: ModelStore::new(data_dir),
            models,
            settings,
            transfers: Mutex::new(Transfers::open(&data_dir.join("ota"))),
            verifying: Mutex::new(HashSet::new()),
            last: Mutex::new(last),
            finished: Mutex::new(Finished::open(data_dir.join("ota").join("finished.json"))),
            notices,
        }
    }

    /// Whether transfers are accepted.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The last update event of `model`.
    pub fn last_event(&self, model: &str) -> Option<Event> {
        lock(&self.last).get(model).cloned()
    }

    fn policy(&self) -> TrialPolicy {
        TrialPolicy {
            predictions: self.settings.trial_predictions,
            latency_ratio: self.settings.trial_latency_ratio,
            latency_slack: Duration::from_millis(self.settings.trial_latency_slack_ms),
        }
    }

    fn notify(&self, notice: Notice) {
        if self.notices.blocking_send(notice).is_err() {
            tracing::debug!("Update notice not sent: management has stopped");
        }
    }

    fn remember(&self, model: &str) {
        if let Ok(state) = self.store.state(model) {
            if let Some(event) = state.last {
                lock(&self.last).insert(model.to_string(), event);
            }
        }
    }

    /// A manifest that passed authentication (blocking: it creates files).
    pub fn manifest(self: &Arc<Self>, manifest: Manifest) -> Progress {
        let id = manifest.transfer.clone();
        let model = manifest.model.clone();
        let rejected = |code: &str, reason: String| {
            warn!(transfer = %id, model = %model, code, reason, "Model transfer refused");
            Progress::new(&id, Some(&model), State::Rejected).because(code, reason)
        };
        if !self.settings.enabled {
            return rejected(
                "disabled",
                "model updates are disabled on this device".into(),
            );
        }
        let problems = manifest.problems(self.settings.max_model_bytes);
        if !problems.is_empty() {
            return rejected("bad_manifest", problems.join("; "));
        }
        if !self.models.contains_key(&model) {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            return rejected(
                "unknown_model",
                format!("no model \"{model}\" here; known: {}", known.join(", ")),
            );
        }
        if lock(&self.verifying).contains(&id) {
            return Progress::new(&id, Some(&model), State::Verifying);
        }
        if let Some(p) = lock(&self.finished).get(&id, &manifest.sha256) {
            return p;
        }
        let free = crate::manage::system::disk(&self.data_dir).map(|d| d.free_bytes);
        let mut transfers = lock(&self.transfers);
        let resuming = transfers.get(&id).is_some();
        // Room for the part file, then for a copy while the old version is kept.
        if !resuming && free.is_some_and(|f| f < manifest.size.saturating_mul(2)) {
            return rejected(
                "no_space",
                format!(
                    "{} bytes free; a {}-byte model needs twice its size",
                    free.unwrap_or(0),
                    manifest.size
                ),
            );
        }
        let t = match transfers.begin(manifest) {
            Ok(t) => t,
            Err(e) => return rejected("storage", format!("cannot stage the transfer: {e}")),
        };
        info!(transfer = %id, model = %model, chunks = t.manifest.chunks(), size = t.manifest.size, resumed = resuming, "Model transfer accepted");
        if t.complete() {
            let progress = t.progress(State::Verifying);
            self.finish(&mut transfers, &id);
            return progress;
        }
        t.progress(State::Receiving)
    }

    /// A chunk (blocking: it writes the file). Returns a progress message when one is due.
    pub fn chunk(self: &Arc<Self>, id: &str, n: &str, bytes: &[u8]) -> Option<Progress> {
        if lock(&self.verifying).contains(id) {
            return None;
        }
        let mut transfers = lock(&self.transfers);
        let Some(t) = transfers.get(id) else {
            let e = transfer::ChunkError::UnknownTransfer(id.into());
            return Some(
                Progress::new(id, None, State::ChunkRefused).because(e.code(), e.to_string()),
            );
        };
        match t.write_chunk(n, bytes) {
            Ok(_) if t.complete() => {
                let progress = t.progress(State::Verifying);
                self.finish(&mut transfers, id);
                Some(progress)
            }
            Ok(true) => Some(t.progress(State::Receiving)),
            Ok(false) => None,
            Err(e) => {
                warn!(transfer = %id, code = e.code(), reason = %e, "Model chunk refused");
                Some(
                    t.progress(State::ChunkRefused)
                        .because(e.code(), e.to_string()),
                )
            }
        }
    }

    /// The sender says it is done: what is missing, if anything.
    pub fn end(self: &Arc<Self>, id: &str) -> Progress {
        if lock(&self.verifying).contains(id) {
            return Progress::new(id, None, State::Verifying);
        }
        if let Some(t) = lock(&self.transfers).get(id) {
            if let Err(e) = t.save() {
                warn!(transfer = %id, error = %e, "Cannot save model transfer progress");
            }
            return t.progress(State::Incomplete);
        }
        // The last chunk may have completed the transfer and its verification may be over
        // before `end`, queued behind it, is read: then the answer is how it ended.
        if let Some(done) = lock(&self.finished).entry(id) {
            return done;
        }
        Progress::new(id, None, State::Rejected).because(
            "unknown_transfer",
            format!("no transfer \"{id}\" in progress; send the manifest"),
        )
    }

    /// Where every pending transfer stands.
    pub fn pending(&self) -> Vec<Progress> {
        lock(&self.transfers).pending()
    }

    /// Saves transfer progress (at shutdown).
    pub fn save(&self) {
        lock(&self.transfers).save_all();
    }

    /// Every chunk is in: verification, installation and activation run on a thread of their
    /// own, so chunks of other transfers and commands are still served meanwhile.
    fn finish(self: &Arc<Self>, transfers: &mut Transfers, id: &str) {
        let Some(mut t) = transfers.take(id) else {
            return;
        };
        if let Err(e) = t.save() {
            warn!(transfer = %id, error = %e, "Cannot save model transfer progress");
        }
        lock(&self.verifying).insert(id.to_string());
        let ota = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("ota-verify".into())
            .spawn(move || {
                let id = t.manifest.transfer.clone();
                let model = t.manifest.model.clone();
                let outcome = ota.install(&t);
                transfer::delete(&t.part().with_file_name(""));
                // Recorded as finished before it stops counting as verifying, so that a
                // message of this transfer arriving meanwhile is answered with how it ended.
                if let Ok(progress) = &outcome {
                    if progress.state != State::Activated {
                        lock(&ota.finished).put(&t.manifest.sha256, progress.clone());
                    }
                }
                lock(&ota.verifying).remove(&id);
                match outcome {
                    Ok(progress) => ota.notify(Notice::Progress(progress)),
                    Err(r) => {
                        warn!(transfer = %id, model = %model, code = r.code, reason = %r.message, "Model transfer refused");
                        ota.notify(Notice::Progress(
                            Progress::new(&id, Some(&model), State::Rejected)
                                .because(r.code, r.message),
                        ));
                    }
                }
                ota.notify(Notice::StatusChanged);
            });
        if let Err(e) = spawned {
            error!(transfer = %id, error = %e, "Cannot start model verification");
            lock(&self.verifying).remove(id);
        }
    }

    /// Verifies a complete transfer, installs it and does what its manifest asks.
    fn install(&self, t: &transfer::Transfer) -> Result<Progress, Refusal> {
        let m = &t.manifest;
        let (config, slot) = self.models.get(&m.model).ok_or_else(|| Refusal {
            code: "unknown_model",
            message: format!("no model \"{}\" here", m.model),
        })?;
        let mut serving = verify::verify(&t.part(), m, config)?;
        let version = Version {
            sha256: m.sha256.to_ascii_lowercase(),
            label: m.label.clone(),
            transfer: Some(m.transfer.clone()),
            installed_at: unix_now(),
        };
        let path = self
            .store
            .install(config, &t.part(), version.clone())
            .map_err(|e| Refusal {
                code: "storage",
                message: e.to_string(),
            })?;
        if let Some(model) = Arc::get_mut(&mut serving.model) {
            model.path = path;
        }
        self.remember(&m.model);
        info!(transfer = %m.transfer, model = %m.model, version = version.short(), "Model verified and installed");
        let mut progress = Progress::new(&m.transfer, Some(&m.model), State::Installed);
        progress.version = Some(version.short().to_string());
        progress.received = m.chunks();
        progress.chunks = m.chunks();
        match m.activate {
            Activation::None => Ok(progress),
            Activation::Shadow => {
                slot.change(Change::Shadow(serving)).map_err(busy)?;
                progress.state = State::Shadow;
                Ok(progress)
            }
            Activation::Active => {
                progress.state = State::Activated;
                // Recorded before the worker can report the trial's end.
                lock(&self.finished).put(&version.sha256, progress.clone());
                self.start_trial(config, slot, &version, serving, Some(m.transfer.clone()))?;
                Ok(progress)
            }
        }
    }

    /// Puts `serving` on trial: recorded first (so a crash during the trial rolls back at the
    /// next start), then handed to the worker.
    fn start_trial(
        &self,
        config: &ModelConfig,
        slot: &ModelSlot,
        version: &Version,
        serving: Serving,
        transfer: Option<String>,
    ) -> Result<(), Refusal> {
        self.store
            .begin_trial(config, version)
            .map_err(|e| Refusal {
                code: "storage",
                message: e.to_string(),
            })?;
        if let Err(e) = slot.change(Change::Trial {
            serving,
            policy: self.policy(),
            transfer,
        }) {
            let _ = self.store.roll_back(&config.id, "busy", &e.to_string());
            self.remember(&config.id);
            return Err(busy(e));
        }
        self.remember(&config.id);
        Ok(())
    }

    /// Follows what the workers report: a trial committed or rolled back is recorded in the
    /// store and reported; any change makes the status be published again.
    pub async fn watch(self: Arc<Self>, mut events: mpsc::Receiver<SlotEvent>) {
        while let Some(event) = events.recv().await {
            let ota = Arc::clone(&self);
            let notices = tokio::task::spawn_blocking(move || ota.record(event))
                .await
                .unwrap_or_default();
            for n in notices {
                if self.notices.send(n).await.is_err() {
                    return;
                }
            }
        }
    }

    fn record(&self, event: SlotEvent) -> Vec<Notice> {
        let mut notices = Vec::new();
        let progress = |state: State| {
            event.transfer.as_ref().map(|t| {
                let mut p = Progress::new(t, Some(&event.model), state);
                p.version = Some(event.version.clone());
                p
            })
        };
        let finished = |state: State, code: Option<(&str, &str)>| {
            if let Some(t) = &event.transfer {
                let mut f = lock(&self.finished);
                if let Some(mut p) = f.entry(t) {
                    p.state = state;
                    if let Some((code, reason)) = code {
                        p = p.because(code, reason);
                    }
                    f.update(t, p);
                }
            }
        };
        match &event.kind {
            SlotEventKind::Applied => {}
            SlotEventKind::Committed { served, p50_us } => {
                if let Err(e) = self.store.commit(&event.model) {
                    error!(model = %event.model, error = %e, "Cannot record the committed model version");
                }
                info!(model = %event.model, version = %event.version, served, p50_us, "Model version committed");
                finished(State::Committed, None);
                notices.extend(progress(State::Committed).map(Notice::Progress));
            }
            SlotEventKind::RolledBack { code, reason } => {
                if let Err(e) = self.store.roll_back(&event.model, code, reason) {
                    error!(model = %event.model, error = %e, "Cannot record the model rollback");
                }
                finished(State::RolledBack, Some((code, reason)));
                notices.extend(
                    progress(State::RolledBack)
                        .map(|p| Notice::Progress(p.because(code, reason.clone()))),
                );
            }
        }
        self.remember(&event.model);
        notices.push(Notice::StatusChanged);
        notices
    }
}

fn busy(e: crate::pipeline::serving::SlotError) -> Refusal {
    Refusal {
        code: "busy",
        message: e.to_string(),
    }
}

fn unix_now() -> u64 {
    super::unix_now()
}

/// Loads what a model's config resolves to, for a worker to serve.
pub fn serving_of(config: &ModelConfig, label: Option<String>) -> Result<Serving, Refusal> {
    Serving::load(config, label).map_err(refusal)
}

/// Why a file cannot serve, as the update protocol names it.
fn refusal(e: ServingError) -> Refusal {
    Refusal {
        code: match e {
            ServingError::Model(_) => "not_loadable",
            ServingError::Pipeline(_) => "incompatible",
        },
        message: e.to_string(),
    }
}
