//! The operator's side of updates: `activate-model`, `rollback-model`, and the installed
//! versions `list-models` reports.

use super::protocol::Activation;
use super::{busy, refusal, Ota, Refusal};
use crate::config::ModelConfig;
use crate::model::store::Version;
use crate::pipeline::resolve::load_version;
use crate::pipeline::{Change, ModelSlot, Serving};
use serde_json::{json, Value};
use std::sync::Arc;

impl Ota {
    /// `activate-model`: an installed version serves on trial, or runs in the shadow.
    pub fn activate(&self, model: &str, version: &str, mode: Activation) -> Result<Value, Refusal> {
        let (config, slot) = self.model(model)?;
        let v = self.store.find(model, version).map_err(|e| Refusal {
            code: "unknown_version",
            message: e.to_string(),
        })?;
        if slot.info().version == v.short() && mode == Activation::Active {
            return Err(Refusal {
                code: "already_active",
                message: format!("version {} already serves model \"{model}\"", v.short()),
            });
        }
        let serving = self.load(config, Some(&v))?;
        match mode {
            Activation::Shadow => {
                slot.change(Change::Shadow(serving)).map_err(busy)?;
                Ok(json!({ "model": model, "version": v.short(), "mode": "shadow" }))
            }
            Activation::Active => {
                self.start_trial(config, slot, &v, serving, None)?;
                Ok(
                    json!({ "model": model, "version": v.short(), "mode": "active", "trial_predictions": self.settings.trial_predictions }),
                )
            }
            Activation::None => Err(Refusal {
                code: "bad_args",
                message: "mode must be \"active\" or \"shadow\"".into(),
            }),
        }
    }

    /// `rollback-model`: ends a shadow run if one is going, else the previous version serves
    /// again, at once.
    pub fn rollback(&self, model: &str) -> Result<Value, Refusal> {
        let (config, slot) = self.model(model)?;
        if let Some(shadow) = slot.shadow() {
            slot.change(Change::EndShadow).map_err(busy)?;
            return Ok(json!({ "model": model, "shadow_ended": shadow.version }));
        }
        let previous = self.store.switch_to_previous(model).map_err(|e| Refusal {
            code: "no_previous",
            message: e.to_string(),
        })?;
        self.remember(model);
        let serving = self.load(config, previous.as_ref())?;
        let version = serving.model.version.clone();
        slot.change(Change::Switch(serving)).map_err(busy)?;
        Ok(json!({ "model": model, "serving": version }))
    }

    /// Loads an installed version (`None`: the config's own file) with its pre- and
    /// post-processing.
    pub(super) fn load(
        &self,
        config: &ModelConfig,
        version: Option<&Version>,
    ) -> Result<Serving, Refusal> {
        load_version(&self.store, config, version).map_err(refusal)
    }

    pub(super) fn model(&self, model: &str) -> Result<&(ModelConfig, Arc<ModelSlot>), Refusal> {
        self.models.get(model).ok_or_else(|| Refusal {
            code: "unknown_model",
            message: format!("no model \"{model}\" here"),
        })
    }

    /// Installed versions per model, for `list-models`.
    pub fn versions(&self, model: &str) -> Value {
        match self.store.state(model) {
            Ok(s) => json!({
                "active": s.active, "previous": s.previous, "installed": s.installed,
                "trial": s.trial, "last": s.last,
            }),
            Err(e) => json!({ "error": e.to_string() }),
        }
    }
}
