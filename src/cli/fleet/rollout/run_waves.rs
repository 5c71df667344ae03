//! Running the waves: each wave's devices as tasks, at most `--parallel` at a time; every
//! change saved to the state file; the rollout aborted once failures pass the threshold.

use super::device::{self, Change, Job};
use super::state::{DeviceRecord, DeviceState, Plan};
use super::Failure;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Runs the waves from the first with a device not yet settled.
pub(super) async fn run_waves(
    job: &Arc<Job>,
    plan: &mut Plan,
    state_path: &Path,
    parallel: usize,
) -> Result<(), Failure> {
    let (changes_tx, mut changes) = mpsc::channel::<Change>(64);
    for wave in 0..plan.waves.len() {
        if plan.aborted.is_some() {
            skip(plan, wave);
            continue;
        }
        let todo: Vec<String> = plan.waves[wave]
            .iter()
            .filter(|d| !plan.devices[*d].state.settled())
            .cloned()
            .collect();
        if todo.is_empty() {
            continue;
        }
        info!(
            wave = wave + 1,
            of = plan.waves.len(),
            devices = todo.len(),
            "Wave started"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(plan.wave_secs);
        let mut queue = todo.into_iter();
        let mut running = JoinSet::new();
        // Changes are taken only from devices still running: one sent just before its task
        // ended is older than the task's final record.
        let mut active = std::collections::HashSet::new();
        loop {
            while plan.aborted.is_none() && running.len() < parallel {
                let Some(id) = queue.next() else { break };
                let record = plan.devices[&id].clone();
                active.insert(id.clone());
                running.spawn(device::run(
                    Arc::clone(job),
                    id,
                    record,
                    deadline,
                    changes_tx.clone(),
                ));
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = running.join_next() => {
                    let (id, record) = done.map_err(|e| Failure::Other(format!("a device task failed: {e}")))?;
                    active.remove(&id);
                    log_change(&id, &record);
                    plan.devices.insert(id, record);
                    check_threshold(plan, wave);
                    plan.save(state_path).map_err(Failure::Other)?;
                }
                Some((id, record)) = changes.recv() => {
                    if !active.contains(&id) {
                        continue;
                    }
                    log_change(&id, &record);
                    plan.devices.insert(id, record);
                    plan.save(state_path).map_err(Failure::Other)?;
                }
            }
        }
        while changes.try_recv().is_ok() {}
        if plan.aborted.is_some() {
            skip(plan, wave);
        }
        let (finished, failed) = plan.tally(wave);
        info!(wave = wave + 1, finished, failed, "Wave ended");
        plan.save(state_path).map_err(Failure::Other)?;
    }
    Ok(())
}

/// Marks the devices of `wave` that were not reached as skipped.
fn skip(plan: &mut Plan, wave: usize) {
    for id in &plan.waves[wave] {
        let r = plan
            .devices
            .get_mut(id)
            .expect("every wave's device has a record");
        if matches!(r.state, DeviceState::Pending | DeviceState::Offline) {
            r.to(DeviceState::Skipped, None);
        }
    }
}

/// Aborts the rollout when the failures so far are past the threshold.
fn check_threshold(plan: &mut Plan, wave: usize) {
    if plan.aborted.is_some() {
        return;
    }
    let (finished, failed) = plan.tally(wave);
    if plan
        .max_failures
        .exceeded(failed, finished, plan.min_devices)
    {
        let why = format!(
            "{failed} of {finished} devices failed, more than --max-failures {} allows",
            plan.max_failures
        );
        error!(wave = wave + 1, "{why}; the remaining devices are skipped");
        plan.aborted = Some(why);
    }
}

fn log_change(id: &str, r: &DeviceRecord) {
    let state = r.state.name();
    if r.state.failed() {
        warn!(
            device = id,
            state,
            code = r.code.as_deref().unwrap_or("-"),
            reason = r.reason.as_deref().unwrap_or("-"),
            "Device failed"
        );
    } else {
        info!(device = id, state, agreement = ?r.agreement, "Device");
    }
}
