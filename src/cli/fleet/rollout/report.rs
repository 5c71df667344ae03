//! What a rollout prints: the waves of a dry run, and the final JSON report.

use super::state::{DeviceState, Plan};
use serde_json::json;
use std::path::Path;

/// `--dry-run`: the waves and their devices.
pub(super) fn print_waves(plan: &Plan) {
    let m = &plan.manifest;
    println!(
        "Model \"{}\" from {} ({} bytes, version {}), {} devices in {} waves; \
         abort past {} failures (after {} devices); {} s per wave{}",
        m.model,
        plan.file.display(),
        m.size,
        &m.sha256[..crate::model::VERSION_LEN],
        plan.devices.len(),
        plan.waves.len(),
        plan.max_failures,
        plan.min_devices,
        plan.wave_secs,
        match plan.gate {
            Some(g) => format!(
                "; shadow gate: {} frames, agreement ≥ {}",
                g.predictions, g.min_agreement
            ),
            None => String::new(),
        }
    );
    for (w, devices) in plan.waves.iter().enumerate() {
        println!(
            "wave {}: {} devices: {}",
            w + 1,
            devices.len(),
            devices.join(" ")
        );
    }
}

/// The final report.
pub(super) fn report(plan: &Plan, state_path: &Path) -> serde_json::Value {
    let switched: Vec<&String> = plan
        .devices
        .iter()
        .filter(|(_, r)| r.state == DeviceState::Committed)
        .map(|(id, _)| id)
        .collect();
    json!({
        "model": plan.manifest.model,
        "transfer": plan.manifest.transfer,
        "sha256": plan.manifest.sha256,
        "state_file": state_path,
        "started_at": plan.started_at,
        "finished_at": plan.finished_at,
        "aborted": plan.aborted,
        "counts": plan.counts(),
        "switched": switched,
        "waves": plan.waves.iter().map(|ids| {
            ids.iter().map(|id| {
                let mut v = serde_json::to_value(&plan.devices[id]).unwrap_or_default();
                v["device"] = id.clone().into();
                v
            }).collect::<Vec<_>>()
        }).collect::<Vec<_>>(),
    })
}
