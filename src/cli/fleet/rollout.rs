//! `edgeinfer fleet rollout`: a model to the selected devices in waves. Each wave pushes the
//! signed transfer to its devices (a few at a time); with a shadow gate the new version first
//! runs in the shadow and is activated only where its agreement reaches the gate. A wave ends
//! when each of its devices is committed, rolled back, rejected, disagreed or out of time; once
//! more devices failed than `--max-failures` allows, the remaining waves are skipped. Everything
//! is kept in a state file, so `--resume` goes on where a stopped operator left off.

mod args;
mod device;
mod report;
mod run_waves;
mod state;

pub(super) use args::RolloutArgs;

use super::directory::DeviceView;
use super::observer::Observer;
use super::waves;
use crate::cli::ota::Prepared;
use crate::cli::EXIT_CONFIG;
use crate::manage::ota::protocol::Manifest;
use args::{check, compare_passed, update, Checked};
use device::Job;
use state::{DeviceState, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

pub(super) fn run(args: &RolloutArgs) -> ExitCode {
    let runtime = match crate::cli::build_runtime(&mut tokio::runtime::Builder::new_multi_thread())
    {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        match rollout(args).await {
            Ok(code) => code,
            Err(Failure::Input(e)) => {
                error!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(Failure::Other(e)) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Why a rollout did not run.
enum Failure {
    /// Bad input, found before anything was sent.
    Input(String),
    /// Anything else.
    Other(String),
}

async fn rollout(args: &RolloutArgs) -> Result<ExitCode, Failure> {
    let checked = check(args).map_err(Failure::Input)?;
    let (resumed, manifest, data, file) = inputs(args, &checked)?;
    if let Some(path) = &args.require_compare {
        compare_passed(path, &manifest).map_err(Failure::Input)?;
    }
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("rollout-{}.json", manifest.transfer)));
    if !args.resume && !args.dry_run && state_path.exists() {
        return Err(Failure::Input(format!(
            "{} exists: go on with that rollout with --resume --state {0}, or remove it",
            state_path.display()
        )));
    }

    let observer = Observer::start(&checked.mqtt, &checked.address, Duration::from_millis(500));
    if tokio::time::timeout(args.connect_timeout, observer.ready())
        .await
        .is_err()
    {
        return Err(Failure::Other(format!(
            "no answer from {} within {:?}",
            checked.mqtt.broker, args.connect_timeout
        )));
    }
    let mut plan = match resumed {
        Some(plan) => plan,
        None => {
            let devices = select(args, &observer, &manifest.model).map_err(Failure::Input)?;
            Plan::new(
                file,
                manifest.clone(),
                checked.gate,
                checked.threshold,
                args.min_devices,
                (args.wait_mins * 60.0).ceil() as u64,
                waves::cut(&devices, &checked.waves),
            )
        }
    };
    if args.dry_run {
        report::print_waves(&plan);
        observer.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    plan.save(&state_path).map_err(Failure::Other)?;
    info!(
        state = %state_path.display(),
        devices = plan.devices.len(),
        waves = plan.waves.len(),
        transfer = %plan.manifest.transfer,
        "Rollout {}",
        if args.resume { "resumed" } else { "started" }
    );
    let job = Arc::new(Job {
        prepared: Prepared {
            mqtt: checked.mqtt.clone(),
            address: checked.address.clone(),
            device: String::new(),
            key: checked.key.clone(),
            ttl: args.ttl,
            manifest: plan.manifest.clone(),
            data,
            wait_for_commit: true,
        },
        gate: plan.gate,
        observer,
    });
    run_waves::run_waves(&job, &mut plan, &state_path, args.parallel).await?;
    if let Ok(job) = Arc::try_unwrap(job) {
        job.observer.close().await;
    }
    finish(args, &mut plan, &state_path)
}

/// What is sent: from the state file when resuming (the file must not have changed), else from
/// `--model` and `--file`.
#[allow(clippy::type_complexity)]
fn inputs(
    args: &RolloutArgs,
    checked: &Checked,
) -> Result<(Option<Plan>, Manifest, Arc<[u8]>, PathBuf), Failure> {
    if args.resume {
        let path = args.state.as_deref().unwrap_or(Path::new(""));
        let plan = Plan::load(path).map_err(Failure::Input)?;
        let (manifest, data) =
            update(args, &plan.manifest.model, &plan.file, checked).map_err(Failure::Input)?;
        if manifest.sha256 != plan.manifest.sha256 {
            return Err(Failure::Input(format!(
                "{} changed since the rollout began (sha256 {} there, {} now)",
                plan.file.display(),
                plan.manifest.sha256,
                manifest.sha256
            )));
        }
        let (manifest, file) = (plan.manifest.clone(), plan.file.clone());
        return Ok((Some(plan), manifest, data, file));
    }
    let (Some(model), Some(file)) = (args.model.as_deref(), args.file.as_deref()) else {
        return Err(Failure::Input("--model and --file are needed".into()));
    };
    let (manifest, data) = update(args, model, file, checked).map_err(Failure::Input)?;
    Ok((None, manifest, data, file.to_path_buf()))
}

/// Saves the finished plan, prints (and writes) the report, and says how it went.
fn finish(args: &RolloutArgs, plan: &mut Plan, state_path: &Path) -> Result<ExitCode, Failure> {
    plan.finished_at = Some(crate::prediction::rfc3339(std::time::SystemTime::now()));
    plan.save(state_path).map_err(Failure::Other)?;
    let text = serde_json::to_string_pretty(&report::report(plan, state_path)).unwrap_or_default();
    println!("{text}");
    if let Some(path) = &args.report {
        if let Err(e) = crate::durable::write_atomically(path, text.as_bytes()) {
            warn!(report = %path.display(), error = %e, "Cannot write the report");
        }
    }
    let all_done = plan
        .devices
        .values()
        .all(|r| r.state == DeviceState::Committed);
    Ok(if all_done && plan.aborted.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The selected devices, in rollout order (by id); an error if a selector key is unknown, if
/// none is selected, or if a selected device has no such model.
fn select(args: &RolloutArgs, observer: &Observer, model: &str) -> Result<Vec<String>, String> {
    let selector = args.select.selector()?;
    let directory = observer.directory();
    let directory = directory.borrow();
    let all = directory.devices().values();
    let unknown = selector.unknown_keys(all.clone());
    if !unknown.is_empty() {
        return Err(format!(
            "--select: no device has the label {}",
            unknown.join(", ")
        ));
    }
    let chosen: Vec<&DeviceView> = all.filter(|d| selector.matches(d)).collect();
    if chosen.is_empty() {
        return Err(format!(
            "no device selected ({} known under the prefix)",
            directory.devices().len()
        ));
    }
    let lacking: Vec<&str> = chosen
        .iter()
        .filter(|d| !d.models.is_empty() && !d.models.iter().any(|m| m.id == model))
        .map(|d| d.device.as_str())
        .collect();
    if !lacking.is_empty() {
        return Err(format!(
            "no model \"{model}\" on {}: narrow the selection",
            lacking.join(", ")
        ));
    }
    Ok(chosen.iter().map(|d| d.device.clone()).collect())
}
