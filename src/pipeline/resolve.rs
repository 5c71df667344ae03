//! What serves a model: the one place that turns a model's config and the versions installed over
//! the air into a loaded `Serving`, for start-up, reload and updates alike.

use super::{Serving, ServingError};
use crate::config::ModelConfig;
use crate::model::store::{Event, ModelStore, Version};
use tracing::{error, warn};

/// Loads `version` of the model (`None`: the config's own file) with its pre- and
/// post-processing.
pub fn load_version(
    store: &ModelStore,
    config: &ModelConfig,
    version: Option<&Version>,
) -> Result<Serving, ServingError> {
    match version {
        Some(v) => Serving::load(&store.config_for(config, v), v.label.clone()),
        None => Serving::load(config, None),
    }
}

/// What serves a model when the daemon starts: the version installed over the air that is active,
/// if any (an interrupted trial is rolled back first), else the config's file. An installed
/// version that no longer loads is rolled back to what served before it, so that a damaged file
/// never keeps the daemon from starting. Returns the model and the store's last event for it.
pub fn load_at_start(
    store: &ModelStore,
    config: &ModelConfig,
) -> Result<(Serving, Option<Event>), ServingError> {
    let last = || store.state(&config.id).ok().and_then(|s| s.last);
    let effective = match store.effective(config) {
        Ok(e) => Some(e),
        Err(e) => {
            error!(model = %config.id, error = %e, "Installed model versions unreadable; the config's file serves");
            None
        }
    };
    if let Some(event) = effective.as_ref().and_then(|e| e.rolled_back.as_ref()) {
        warn!(model = %config.id, version = %event.version, "A model version on trial was rolled back: the daemon stopped during its trial");
    }
    if let Some(active) = effective.and_then(|e| e.version) {
        match load_version(store, config, Some(&active)) {
            Ok(serving) => return Ok((serving, last())),
            Err(refusal) => {
                let path = store.file(&config.id, &active.sha256);
                error!(model = %config.id, path = %path.display(), reason = %refusal, "Installed model version cannot serve; rolling back");
                let reason = refusal.to_string();
                if let Ok(Some(previous)) = store.roll_back(&config.id, "not_loadable", &reason) {
                    if let Ok(serving) = load_version(store, config, Some(&previous)) {
                        return Ok((serving, last()));
                    }
                }
            }
        }
    }
    Ok((Serving::load(config, None)?, last()))
}
