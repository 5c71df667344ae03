//! One device's part of a rollout, from where its record stands to a final state: wait until it
//! is online, push the model (today's signed transfer), and under the shadow gate measure its
//! agreement, then activate it or end the shadow run.

use super::state::{DeviceRecord, DeviceState, Gate};
use crate::cli::fleet::directory::{Directory, ShadowView};
use crate::cli::fleet::observer::Observer;
use crate::cli::ota::link;
use crate::cli::ota::transfer::Outcome;
use crate::cli::ota::Prepared;
use crate::manage::ota::protocol::State;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// What every device of a rollout shares.
pub(super) struct Job {
    /// The push, with any device id: each device gets a copy with its own.
    pub prepared: Prepared,
    pub gate: Option<Gate>,
    pub observer: Observer,
}

/// A device's record after a change, for the coordinator to save.
pub(super) type Change = (String, DeviceRecord);

/// Takes `device` from `record` to a final state (or its wave's `deadline`), reporting each
/// change on `changes`.
pub(super) async fn run(
    job: Arc<Job>,
    device: String,
    mut record: DeviceRecord,
    deadline: Instant,
    changes: mpsc::Sender<Change>,
) -> Change {
    let mut directory = job.observer.directory();
    let model = job.prepared.manifest.model.clone();
    loop {
        match record.state {
            DeviceState::Pending
            | DeviceState::Offline
            | DeviceState::Pushing
            | DeviceState::TimedOut => {
                let online = wait_for(&mut directory, deadline, |d| {
                    d.get(&device).filter(|v| v.online).map(|_| ())
                });
                if online.await.is_none() {
                    record.to(
                        DeviceState::Offline,
                        Some(("offline", "offline until the wave's time was up".into())),
                    );
                    break;
                }
                record.to(DeviceState::Pushing, None);
                record.pushes += 1;
                report(&changes, &device, &record).await;
                push(&job, &device, &mut record, deadline).await;
            }
            DeviceState::Shadowing => {
                if !shadow_gate(
                    &job,
                    &device,
                    &mut record,
                    &mut directory,
                    deadline,
                    &changes,
                )
                .await
                {
                    break;
                }
            }
            DeviceState::Activating => {
                await_commit(&model, &device, &mut record, &mut directory, deadline).await;
                break;
            }
            DeviceState::Committed
            | DeviceState::Rejected
            | DeviceState::RolledBack
            | DeviceState::Disagreed
            | DeviceState::Skipped => break,
        }
        if record.state.settled() || record.state == DeviceState::TimedOut {
            break;
        }
        report(&changes, &device, &record).await;
    }
    (device, record)
}

/// Under the shadow gate: waits for enough frames in the shadow, then activates the version
/// where agreement reaches the gate and ends the shadow run where it does not. False when the
/// device is done (disagreed, rejected, timed out), true when it is on trial.
async fn shadow_gate(
    job: &Job,
    device: &str,
    record: &mut DeviceRecord,
    directory: &mut watch::Receiver<Directory>,
    deadline: Instant,
    changes: &mpsc::Sender<Change>,
) -> bool {
    let model = job.prepared.manifest.model.clone();
    let gate = job.gate.unwrap_or(Gate {
        predictions: 0,
        min_agreement: 0.0,
    });
    let version = record.version.clone().unwrap_or_default();
    let measured = wait_for(directory, deadline, |d| {
        let s = d.get(device)?.shadow.get(&model)?;
        (s.version == version && s.frames >= gate.predictions).then(|| s.clone())
    })
    .await;
    let Some(ShadowView {
        frames, agreement, ..
    }) = measured
    else {
        record.to(
            DeviceState::TimedOut,
            Some((
                "shadow",
                format!(
                    "fewer than {} frames in the shadow before the wave's time was up",
                    gate.predictions
                ),
            )),
        );
        return false;
    };
    let agreement = agreement.unwrap_or(0.0);
    record.agreement = Some(agreement);
    record.frames = Some(frames);
    if agreement >= gate.min_agreement {
        record.to(DeviceState::Activating, None);
        report(changes, device, record).await;
        let args = json!({ "model": model, "version": version, "mode": "active" });
        if let Err((code, reason)) = command(job, device, "activate-model", args, deadline).await {
            record.to(DeviceState::Rejected, Some((&code, reason)));
            return false;
        }
    } else {
        let args = json!({ "model": model });
        // The shadow run is ended either way; a device that does not answer has
        // it ended at its next restart.
        let ended = command(job, device, "rollback-model", args, deadline).await;
        let mut reason = format!(
            "agreement {agreement:.4} over {frames} frames is below {}",
            gate.min_agreement
        );
        if let Err((_, e)) = ended {
            reason.push_str(&format!("; ending the shadow run failed: {e}"));
        }
        record.to(DeviceState::Disagreed, Some(("disagreed", reason)));
        return false;
    }
    true
}

/// On trial after the gate: waits for the status to show the version committed or rolled back.
async fn await_commit(
    model: &str,
    device: &str,
    record: &mut DeviceRecord,
    directory: &mut watch::Receiver<Directory>,
    deadline: Instant,
) {
    let version = record.version.clone().unwrap_or_default();
    let outcome = wait_for(directory, deadline, |d| {
        let m = d.get(device)?.models.iter().find(|m| m.id == model)?;
        match &m.update {
            Some(u) if u.version == version && u.what == "rolled_back" => {
                Some(Err((u.code.clone(), u.reason.clone())))
            }
            _ if m.version == version && !m.trial => Some(Ok(())),
            _ => None,
        }
    })
    .await;
    match outcome {
        Some(Ok(())) => record.to(DeviceState::Committed, None),
        Some(Err((code, reason))) => record.to(
            DeviceState::RolledBack,
            Some((
                code.as_deref().unwrap_or("rolled_back"),
                reason.unwrap_or_default(),
            )),
        ),
        None => record.to(
            DeviceState::TimedOut,
            Some(("trial", "no commit before the wave's time was up".into())),
        ),
    }
}

/// Pushes the model and records the outcome: shadowing (under the gate), committed, rejected,
/// rolled back or timed out.
async fn push(job: &Job, device: &str, record: &mut DeviceRecord, deadline: Instant) {
    let mut prepared = job.prepared.clone();
    prepared.device = device.to_string();
    let span = tracing::info_span!("push", device);
    let outcome = tokio::time::timeout_at(deadline, link::push(&prepared).instrument(span)).await;
    let because = |p: &crate::manage::ota::protocol::Progress| {
        let code = p.code.clone().unwrap_or_else(|| link::state_name(p.state));
        (code, p.reason.clone().unwrap_or_default())
    };
    match outcome {
        Err(_) => record.to(
            DeviceState::TimedOut,
            Some((
                "timeout",
                "no final state before the wave's time was up".into(),
            )),
        ),
        Ok(Err(e)) => record.to(DeviceState::TimedOut, Some(("error", e))),
        Ok(Ok(Outcome::Succeeded(p))) => {
            record.version = p.version.clone();
            let state = match p.state {
                State::Shadow => DeviceState::Shadowing,
                _ => DeviceState::Committed,
            };
            record.to(state, None);
        }
        Ok(Ok(Outcome::Failed(p))) => {
            record.version = p.version.clone();
            let (code, reason) = because(&p);
            let state = if p.state == State::RolledBack {
                DeviceState::RolledBack
            } else {
                DeviceState::Rejected
            };
            record.to(state, Some((&code, reason)));
        }
    }
}

/// Sends a command and waits for its result until `deadline`: `Err((code, reason))` unless the
/// device says it is done.
async fn command(
    job: &Job,
    device: &str,
    name: &str,
    args: Value,
    deadline: Instant,
) -> Result<Value, (String, String)> {
    let p = &job.prepared;
    let sent = job.observer.command(&p.key, device, name, args, p.ttl);
    match tokio::time::timeout_at(deadline, sent).await {
        Err(_) => Err(("timeout".into(), format!("no answer to {name}"))),
        Ok(Err(e)) => Err(("error".into(), e)),
        Ok(Ok(result)) if result["ok"] == true => Ok(result),
        Ok(Ok(result)) => {
            let error = &result["error"];
            Err((
                error["code"].as_str().unwrap_or("failed").to_string(),
                error["message"].as_str().unwrap_or_default().to_string(),
            ))
        }
    }
}

/// Waits until `f` finds something in the directory, or `deadline`.
async fn wait_for<T>(
    directory: &mut watch::Receiver<Directory>,
    deadline: Instant,
    f: impl Fn(&Directory) -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(found) = f(&directory.borrow_and_update()) {
            return Some(found);
        }
        match tokio::time::timeout_at(deadline, directory.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

async fn report(changes: &mpsc::Sender<Change>, device: &str, record: &DeviceRecord) {
    let _ = changes.send((device.to_string(), record.clone())).await;
}
