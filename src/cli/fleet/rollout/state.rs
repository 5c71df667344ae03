//! The rollout's state file: the plan (what is sent, to whom, in which waves, with which
//! thresholds) and where each device stands, written atomically after every change, so that an
//! operator who was stopped resumes with `--resume` without pushing again where a device is done.

use crate::cli::fleet::waves::Threshold;
use crate::manage::ota::protocol::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format of the file.
const FORMAT: u32 = 1;

/// Where a device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum DeviceState {
    /// Its wave has not reached it.
    Pending,
    /// Offline; pushed to once it is back, until its wave's time is up.
    Offline,
    /// The transfer is going.
    Pushing,
    /// The new version runs in the serving model's shadow; agreement being measured.
    Shadowing,
    /// Agreement reached the gate; the new version is on trial.
    Activating,
    /// The new version serves.
    Committed,
    /// The device refused the model (verification, golden check, size...).
    Rejected,
    /// The new version served on trial and was rolled back.
    RolledBack,
    /// Under the shadow gate, agreement stayed below it; the shadow run was ended.
    Disagreed,
    /// No final state before its wave's time was up.
    TimedOut,
    /// Not reached: the rollout was aborted first.
    Skipped,
}

impl DeviceState {
    /// Whether the device is done with this rollout (a resumed rollout leaves it alone).
    pub(super) fn settled(self) -> bool {
        matches!(
            self,
            Self::Committed | Self::Rejected | Self::RolledBack | Self::Disagreed | Self::Skipped
        )
    }

    /// Whether it counts against the failure threshold.
    pub(super) fn failed(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::RolledBack | Self::Disagreed | Self::TimedOut
        )
    }

    /// As written in the file and the report.
    pub(super) fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// One device of the rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DeviceRecord {
    /// Its wave, from 0.
    pub wave: usize,
    /// Where it stands.
    pub state: DeviceState,
    /// Version it reported for the new model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Reason code of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Reason in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Shadow agreement measured, under the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Frames it was measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// Manifests sent to it, over every run of the rollout.
    #[serde(default)]
    pub pushes: u32,
    /// When it last changed (RFC 3339).
    #[serde(default)]
    pub at: String,
}

impl DeviceRecord {
    pub(super) fn new(wave: usize) -> Self {
        Self {
            wave,
            state: DeviceState::Pending,
            version: None,
            code: None,
            reason: None,
            agreement: None,
            frames: None,
            pushes: 0,
            at: now(),
        }
    }

    /// Moves to `state`, with a reason when one is given.
    pub(super) fn to(&mut self, state: DeviceState, why: Option<(&str, String)>) {
        self.state = state;
        if let Some((code, reason)) = why {
            self.code = Some(code.to_string());
            self.reason = Some(reason);
        }
        self.at = now();
    }
}

/// The shadow gate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Gate {
    /// Frames the new version must have run in the shadow before agreement counts.
    pub predictions: u64,
    /// Least agreement (0 to 1) for it to be activated.
    pub min_agreement: f64,
}

/// The whole rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Plan {
    pub format: u32,
    /// The model file, read again on resume (its sha256 must match).
    pub file: PathBuf,
    /// What each device is sent (`activate` as the gate needs).
    pub manifest: Manifest,
    pub gate: Option<Gate>,
    pub max_failures: Threshold,
    pub min_devices: usize,
    /// How long each wave may take, in seconds.
    pub wave_secs: u64,
    /// Devices by wave, in rollout order.
    pub waves: Vec<Vec<String>>,
    pub devices: BTreeMap<String, DeviceRecord>,
    /// Why the rollout stopped before its last wave.
    #[serde(default)]
    pub aborted: Option<String>,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
}

impl Plan {
    /// A new plan.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        file: PathBuf,
        manifest: Manifest,
        gate: Option<Gate>,
        max_failures: Threshold,
        min_devices: usize,
        wave_secs: u64,
        waves: Vec<Vec<String>>,
    ) -> Self {
        let devices = waves
            .iter()
            .enumerate()
            .flat_map(|(w, ids)| ids.iter().map(move |d| (d.clone(), DeviceRecord::new(w))))
            .collect();
        Self {
            format: FORMAT,
            file,
            manifest,
            gate,
            max_failures,
            min_devices,
            wave_secs,
            waves,
            devices,
            aborted: None,
            started_at: now(),
            finished_at: None,
        }
    }

    /// Reads a state file.
    pub(super) fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read(path).map_err(|e| format!("state file {}: {e}", path.display()))?;
        let plan: Plan = serde_json::from_slice(&text)
            .map_err(|e| format!("state file {}: {e}", path.display()))?;
        if plan.format != FORMAT {
            return Err(format!(
                "state file {}: format {} (this edgeinfer reads {FORMAT})",
                path.display(),
                plan.format
            ));
        }
        Ok(plan)
    }

    /// Writes it atomically.
    pub(super) fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::durable::write_atomically(path, &bytes)
            .map_err(|e| format!("state file {}: {e}", path.display()))
    }

    /// Devices of waves up to and including `wave` that have finished, and how many of them
    /// failed.
    pub(super) fn tally(&self, wave: usize) -> (usize, usize) {
        let finished: Vec<DeviceState> = self
            .devices
            .values()
            .filter(|r| r.wave <= wave && (r.state.settled() || r.state == DeviceState::TimedOut))
            .filter(|r| r.state != DeviceState::Skipped)
            .map(|r| r.state)
            .collect();
        let failed = finished.iter().filter(|s| s.failed()).count();
        (finished.len(), failed)
    }

    /// Devices in each state.
    pub(super) fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.devices.values() {
            *counts.entry(r.state.name()).or_insert(0) += 1;
        }
        counts
    }
}

fn now() -> String {
    crate::prediction::rfc3339(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_reads_back_and_counts_failures_by_wave() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest {
            transfer: "m-1".into(),
            model: "m".into(),
            label: None,
            size: 10,
            sha256: "0".repeat(64),
            chunk_size: 1024,
            activate: Default::default(),
            golden: None,
        };
        let waves = vec![vec!["a".to_string(), "b".into()], vec!["c".into()]];
        let mut plan = Plan::new(
            "m.onnx".into(),
            manifest,
            None,
            Threshold::parse("10%").unwrap(),
            1,
            60,
            waves,
        );
        plan.devices
            .get_mut("a")
            .unwrap()
            .to(DeviceState::Committed, None);
        let b = plan.devices.get_mut("b").unwrap();
        b.to(DeviceState::Rejected, Some(("too_large", "big".into())));
        plan.devices
            .get_mut("c")
            .unwrap()
            .to(DeviceState::Skipped, None);
        let path = dir.path().join("rollout.json");
        plan.save(&path).unwrap();
        let back = Plan::load(&path).unwrap();
        assert_eq!(back.tally(0), (2, 1));
        assert_eq!(back.tally(1), (2, 1));
        assert_eq!(back.devices["b"].code.as_deref(), Some("too_large"));
        assert_eq!(back.counts()["skipped"], 1);
        std::fs::write(&path, b"{").unwrap();
        assert!(Plan::load(&path).unwrap_err().contains("rollout.json"));
    }
}
