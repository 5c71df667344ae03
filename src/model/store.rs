//! Installed model versions: files delivered over the air, which one serves, which one served
//! before it, and whether the one serving is still on trial.
//!
//! Layout, under `{data_dir}/models/{model id}/`:
//! - `{sha256}.onnx`: installed versions; at most the active, the previous and one installed
//!   but not yet activated are kept;
//! - `state.json`, replaced atomically: the config file these versions supersede (`base`), the
//!   active and previous versions, whether the active one is on trial, and the last event.
//!
//! No entry (or no active version) means the config's own file serves. A trial that did not
//! finish before the daemon stopped is rolled back when the daemon starts again, so a model that
//! crashes the process cannot keep a device in a restart loop.

use crate::config::ModelConfig;
use crate::durable::{rename_durably, write_atomically, FileError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// sha256 of the file, hex.
    pub sha256: String,
    /// The operator's name for it.
    #[serde(default)]
    pub label: Option<String>,
    /// Transfer that delivered it.
    #[serde(default)]
    pub transfer: Option<String>,
    /// Unix seconds.
    pub installed_at: u64,
}

impl Version {
    /// First 12 hex digits of the sha256, as versions are shown.
    pub fn short(&self) -> &str {
        &self.sha256[..super::VERSION_LEN.min(self.sha256.len())]
    }
}

/// What last happened to a model's versions, shown in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `activated`, `committed`, `rolled_back`, `switched`, `installed`.
    pub what: String,
    /// Version concerned.
    pub version: String,
    /// Transfer, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    /// Reason code of a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Reason in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds.
    pub at: u64,
}

impl Event {
    /// `what` happened to `version` (`None`: the config's own file) now.
    fn new(what: &str, version: Option<&Version>) -> Self {
        Self {
            what: what.into(),
            version: version.map_or_else(|| "config".into(), |v| v.short().to_string()),
            transfer: version.and_then(|v| v.transfer.clone()),
            code: None,
            reason: None,
            at: unix_now(),
        }
    }

    /// The same with a reason.
    fn because(mut self, code: Option<&str>, reason: &str) -> Self {
        self.code = code.map(Into::into);
        self.reason = Some(reason.into());
        self
    }
}

/// The persisted state of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelState {
    /// The config's `path` these versions supersede; when the config names another file, the
    /// operator changed it on purpose and the config wins.
    pub base: PathBuf,
    /// Serving version; `None`: the config's file.
    #[serde(default)]
    pub active: Option<Version>,
    /// What served before `active`; `None`: the config's file.
    #[serde(default)]
    pub previous: Option<Version>,
    /// Installed, not activated.
    #[serde(default)]
    pub installed: Option<Version>,
    /// `active` is on trial.
    #[serde(default)]
    pub trial: bool,
    /// Last thing that happened.
    #[serde(default)]
    pub last: Option<Event>,
}

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system.
    #[error(transparent)]
    Io(#[from] FileError),
    /// A `state.json` that does not parse.
    #[error("{}: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    /// No such version installed.
    #[error("model \"{model}\" has no installed version \"{version}\"")]
    UnknownVersion { model: String, version: String },
    /// Nothing to roll back to.
    #[error("model \"{0}\" has no previous version")]
    NoPrevious(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    let at = FileError::at(path);
    move |source| StoreError::Io(at(source))
}

/// The installed versions of every model.
#[derive(Debug)]
pub struct ModelStore {
    root: PathBuf,
}

/// A model's config with the file that should serve, and what changed on the way.
#[derive(Debug)]
pub struct Effective {
    /// The config to load (path and sha256 of the active version).
    pub config: ModelConfig,
    /// The version serving, when not the config's file.
    pub version: Option<Version>,
    /// A trial rolled back because the daemon stopped during it.
    pub rolled_back: Option<Event>,
}

impl ModelStore {
    /// The store under `{data_dir}/models`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("models"),
        }
    }

    fn dir(&self, model: &str) -> PathBuf {
        self.root.join(model)
    }

    /// File of a version.
    pub fn file(&self, model: &str, sha256: &str) -> PathBuf {
        self.dir(model).join(format!("{sha256}.onnx"))
    }

    /// `config` with its model file replaced by installed `version`.
    pub fn config_for(&self, config: &ModelConfig, version: &Version) -> ModelConfig {
        let mut config = config.clone();
        config.path = self.file(&config.id, &version.sha256);
        config.sha256 = Some(version.sha256.clone());
        config
    }

    /// The state of `model`; default when it has none.
    pub fn state(&self, model: &str) -> Result<ModelState, StoreError> {
        let path = self.dir(model).join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Damaged {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ModelState::default()),
            Err(source) => Err(FileError { path, source }.into()),
        }
    }

    fn save(&self, model: &str, state: &ModelState) -> Result<(), StoreError> {
        let path = self.dir(model).join("state.json");
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        write_atomically(&path, &bytes).map_err(io(&path))?;
        self.prune(model, state);
        Ok(())
    }

    /// Deletes version files no longer referenced. Best effort: a file left behind costs disk,
    /// not correctness.
    fn prune(&self, model: &str, state: &ModelState) {
        let keep: Vec<&str> = [&state.active, &state.previous, &state.installed]
            .into_iter()
            .flatten()
            .map(|v| v.sha256.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(self.dir(model)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(sha) = name.to_str().and_then(|n| n.strip_suffix(".onnx")) else {
                continue;
            };
            if !keep.contains(&sha) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// What should serve `config` now. Resolves a trial interrupted by a stop (rolled back, and
    /// said so), and forgets the installed versions if the config now names another file.
    pub fn effective(&self, config: &ModelConfig) -> Result<Effective, StoreError> {
        let mut state = self.state(&config.id)?;
        let mut effective = Effective {
            config: config.clone(),
            version: None,
            rolled_back: None,
        };
        if state == ModelState::default() {
            return Ok(effective);
        }
        if state.base != config.path {
            tracing::info!(model = %config.id, path = %config.path.display(), "The config names another model file; versions installed over the air are set aside");
            let fresh = ModelState {
                base: config.path.clone(),
                ..ModelState::default()
            };
            self.save(&config.id, &fresh)?;
            return Ok(effective);
        }
        if state.trial {
            if let Some(active) = state.active.take() {
                let event = Event::new("rolled_back", Some(&active)).because(
                    Some("interrupted"),
                    "the daemon stopped before the trial ended; the previous version serves",
                );
                state.active = state.previous.take();
                // Kept installed: a stop is not proof that the version is bad, and the operator
                // may activate it again.
                state.installed = Some(active);
                state.trial = false;
                state.last = Some(event.clone());
                self.save(&config.id, &state)?;
                effective.rolled_back = Some(event);
            }
        }
        if let Some(active) = &state.active {
            effective.config = self.config_for(config, active);
            effective.version = Some(active.clone());
        }
        Ok(effective)
    }

    /// Moves a verified file into the store as a version of `config`'s model, not yet active.
    pub fn install(
        &self,
        config: &ModelConfig,
        staged: &Path,
        version: Version,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.dir(&config.id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let target = self.file(&config.id, &version.sha256);
        rename_durably(staged, &target).map_err(io(&target))?;
        let mut state = self.state(&config.id)?;
        state.base = config.path.clone();
        if state.active.as_ref().map(|a| &a.sha256) != Some(&version.sha256) {
            state.installed = Some(version.clone());
        }
        state.last = Some(Event::new("installed", Some(&version)));
        self.save(&config.id, &state)?;
        Ok(target)
    }

    /// The installed version whose sha256 starts with `prefix` (at least 8 hex digits), among
    /// the active, previous and installed ones.
    pub fn find(&self, model: &str, prefix: &str) -> Result<Version, StoreError> {
        let state = self.state(model)?;
        let prefix = prefix.to_ascii_lowercase();
        [state.installed, state.previous, state.active]
            .into_iter()
            .flatten()
            .find(|v| prefix.len() >= 8 && v.sha256.starts_with(&prefix))
            .ok_or_else(|| StoreError::UnknownVersion {
                model: model.to_string(),
                version: prefix,
            })
    }

    /// `version` serves from now on, on trial; what served before becomes the previous version.
    pub fn begin_trial(&self, config: &ModelConfig, version: &Version) -> Result<(), StoreError> {
        let mut state = self.state(&config.id)?;
        state.base = config.path.clone();
        if state.active.as_ref() != Some(version) {
            state.previous = state.active.take();
            state.active = Some(version.clone());
        }
        if state.installed.as_ref() == Some(version) {
            state.installed = None;
        }
        state.trial = true;
        state.last = Some(Event::new("activated", Some(version)));
        self.save(&config.id, &state)
    }

    /// The trial of the active version passed.
    pub fn commit(&self, model: &str) -> Result<(), StoreError> {
        let mut state = self.state(model)?;
        state.trial = false;
        if let Some(active) = &state.active {
            state.last = Some(Event::new("committed", Some(active)));
        }
        self.save(model, &state)
    }

    /// The active version failed (`code`, `reason`): the previous one serves again. Returns it
    /// (`None`: the config's file).
    pub fn roll_back(
        &self,
        model: &str,
        code: &str,
        reason: &str,
    ) -> Result<Option<Version>, StoreError> {
        let mut state = self.state(model)?;
        let failed = state.active.take();
        state.active = state.previous.take();
        state.trial = false;
        state.last = Some(Event::new("rolled_back", failed.as_ref()).because(Some(code), reason));
        self.save(model, &state)?;
        Ok(state.active)
    }

    /// The operator asked for the previous version back. Returns it (`None`: the config's file).
    pub fn switch_to_previous(&self, model: &str) -> Result<Option<Version>, StoreError> {
        let state = self.state(model)?;
        if state.active.is_none() {
            return Err(StoreError::NoPrevious(model.to_string()));
        }
        let mut state = state;
        let leaving = state.active.take();
        state.active = state.previous.take();
        // The version left can be activated again.
        state.installed = leaving.clone();
        state.trial = false;
        let mut switched =
            Event::new("switched", state.active.as_ref()).because(None, "rollback-model");
        // The operator chose it: no transfer to report.
        switched.transfer = None;
        state.last = Some(switched);
        self.save(model, &state)?;
        Ok(state.active)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> ModelConfig {
        let text = format!(
            "id = \"m\"\npath = {:?}\n[preprocess]\ntype = \"record\"\n[postprocess]\ntype = \"raw\"\n",
            dir.join("base.onnx")
        );
        toml::from_str(&text).unwrap()
    }

    fn staged(dir: &Path, sha: &str) -> (PathBuf, Version) {
        let path = dir.join(format!("{sha}.part"));
        std::fs::write(&path, sha).unwrap();
        (
            path,
            Version {
                sha256: sha.repeat(64 / sha.len()),
                label: None,
                transfer: Some(format!("t-{sha}")),
                installed_at: 1,
            },
        )
    }

    #[test]
    fn a_trial_interrupted_by_a_stop_is_rolled_back_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let cfg = config(dir.path());
        assert_eq!(store.effective(&cfg).unwrap().config.path, cfg.path);

        let (part, v1) = staged(dir.path(), "a");
        store.install(&cfg, &part, v1.clone()).unwrap();
        store.begin_trial(&cfg, &v1).unwrap();
        let e = store.effective(&cfg).unwrap();
        assert_eq!(
            e.config.path, cfg.path,
            "interrupted trial serves the config"
        );
        assert_eq!(e.rolled_back.unwrap().code.as_deref(), Some("interrupted"));
        assert_eq!(store.state("m").unwrap().installed, Some(v1.clone()));

        store.begin_trial(&cfg, &v1).unwrap();
        store.commit("m").unwrap();
        let e = store.effective(&cfg).unwrap();
        assert_eq!(e.config.path, store.file("m", &v1.sha256));
        assert_eq!(e.config.sha256.as_deref(), Some(v1.sha256.as_str()));

        let (part, v2) = staged(dir.path(), "b");
        store.install(&cfg, &part, v2.clone()).unwrap();
        store.begin_trial(&cfg, &v2).unwrap();
        let back = store.roll_back("m", "runtime_error", "boom").unwrap();
        assert_eq!(back, Some(v1.clone()));
        assert!(
            !store.file("m", &v2.sha256).exists(),
            "failed version pruned"
        );
        assert!(store.file("m", &v1.sha256).exists());
    }

    #[test]
    fn a_config_naming_another_file_wins_over_installed_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let cfg = config(dir.path());
        let (part, v1) = staged(dir.path(), "a");
        store.install(&cfg, &part, v1.clone()).unwrap();
        store.begin_trial(&cfg, &v1).unwrap();
        store.commit("m").unwrap();
        let mut moved = cfg.clone();
        moved.path = dir.path().join("other.onnx");
        assert_eq!(store.effective(&moved).unwrap().config.path, moved.path);
        assert_eq!(store.state("m").unwrap().active, None);
    }

    #[test]
    fn versions_are_found_by_a_prefix_of_their_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let cfg = config(dir.path());
        let (part, v1) = staged(dir.path(), "ab");
        store.install(&cfg, &part, v1.clone()).unwrap();
        assert_eq!(store.find("m", "ABABABAB").unwrap(), v1);
        assert!(store.find("m", "abab").is_err(), "too short a prefix");
        assert!(store.find("m", "cdcdcdcd").is_err());
    }
}
