//! Model updates over MQTT against a real broker: a pushed model serves without a gap in the
//! predictions and survives a restart (over mutual TLS under an ACL); every bad transfer is
//! refused with its reason while the old model keeps serving; a version that fails or is too
//! slow on trial is rolled back on its own; a transfer resumes after a broker restart and a
//! daemon SIGKILL; shadow runs report agreement; activate-model and rollback-model.

use crate::support::*;
use edgeinfer::manage::ota::protocol::{self, Activation, Manifest};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PREDICTIONS: &str = "edgeinfer/t1/predictions/+";
const TELEMETRY: &str = "edgeinfer/t1/telemetry";

/// The device may use its own tree; the operator everything; nobody else anything.
const ACL: &str =
    "user t1\ntopic readwrite edgeinfer/t1/#\n\nuser operator\ntopic readwrite edgeinfer/#\n";

fn sha(path: &Path) -> String {
    edgeinfer::model::sha256_file(path).unwrap()
}

/// The version the status shows for a model file: the first 12 hex digits of its sha256.
fn version(path: &Path) -> String {
    sha(path)[..12].to_string()
}

fn test_model(name: &str) -> PathBuf {
    repo(&format!("models/test/{name}"))
}

/// Runs `edgeinfer ota push` with `args` after the broker options.
fn push(broker: &[String], key: &Path, model: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["ota", "push"])
        .args(broker)
        .args([
            "--device",
            "t1",
            "--model-id",
            "vibration",
            "--timeout",
            "90s",
            "--key",
        ])
        .arg(key)
        .arg("--model")
        .arg(model)
        .args(args)
        .output()
        .unwrap()
}

/// The last progress message `ota push` printed.
fn final_state(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout.rfind("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(stdout[start..].trim())
        .unwrap_or_else(|e| panic!("no final state ({e}):\n{}", text(out)))
}

/// Sequence numbers (from the prediction ids) and frame numbers received, as sets.
fn received(peer: &Recorder) -> (BTreeSet<u64>, BTreeSet<u64>, Vec<Value>) {
    let mut ids = BTreeSet::new();
    let mut frames = BTreeSet::new();
    let all: Vec<Value> = peer
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.contains("/predictions/"))
        .filter_map(|(_, p)| serde_json::from_slice(p).ok())
        .collect();
    for p in &all {
        let id = p["id"].as_str().unwrap();
        ids.insert(id.rsplit('-').next().unwrap().parse().unwrap());
        frames.insert(p["frame_seq"].as_u64().unwrap());
    }
    (ids, frames, all)
}

/// Neither the outbox ids nor the frame numbers have a hole between their first and last.
fn assert_no_gap(peer: &Recorder, log: &str) {
    let (ids, frames, _) = received(peer);
    for (what, set) in [("prediction ids", ids), ("frame numbers", frames)] {
        let (first, last) = (*set.first().unwrap(), *set.last().unwrap());
        let missing: Vec<u64> = (first..=last).filter(|s| !set.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "{what} {first}..={last}: {} missing, e.g. {:?}\n{log}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
}

fn version_served(peer: &Recorder) -> Option<Value> {
    peer.json_on(STATUS)
        .last()
        .map(|s| s["models"][0]["version"].clone())
}

fn wait_status(peer: &Recorder, daemon: &Daemon, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_until(WAIT, || peer.json_on(STATUS).last().is_some_and(&f));
    let last = peer.json_on(STATUS).last().cloned().unwrap_or_default();
    assert!(
        f(&last),
        "status never showed {what}: {last}\n{}",
        daemon.log()
    );
    last
}

fn remote_extra() -> &'static str {
    "[remote.ota]\ntrial_predictions = 40\ntrial_latency_slack_ms = 2\n"
}

#[test]
fn a_pushed_model_serves_without_a_gap_and_is_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let device = pki.client("t1");
    let (op_cert, op_key) = pki.client("operator");
    let broker = TlsBroker::start(&pki, ACL);
    let peer = Recorder::connect(
        tls_options(
            broker.port,
            "watcher",
            &pki.ca(),
            Some(&(op_cert.clone(), op_key.clone())),
        ),
        &[PREDICTIONS, STATUS],
    )
    .expect("the operator's certificate is accepted");

    let key = operator_key();
    let key_file = dir.path().join("op.key");
    std::fs::write(&key_file, edgeinfer::manage::auth::signing_key_text(&key)).unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 60);
    let config = LineConfig {
        rate: Some(100.0),
        looping: true,
        broker: Some(broker.url()),
        mqtt_extra: pki.tls_toml(Some(&device)),
        remote: Some(Remote {
            operator_key: key.verifying_key(),
            telemetry_interval_secs: None,
            extra: remote_extra().into(),
        }),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));

    let daemon = Daemon::start(&config);
    let v1 = version(&repo("models/vibration.onnx"));
    wait_status(&peer, &daemon, "v1 online", |s| {
        s["online"] == true && s["models"][0]["version"] == v1.as_str()
    });
    assert!(wait_until(WAIT, || received(&peer).0.len() > 50));

    let v2_file = test_model("vibration-v2.onnx");
    let v2_sha = sha(&v2_file);
    let v2 = version(&v2_file);
    let broker_args = vec![
        "--broker".to_string(),
        broker.url(),
        "--ca".into(),
        pki.ca().display().to_string(),
        "--client-cert".into(),
        op_cert.display().to_string(),
        "--client-key".into(),
        op_key.display().to_string(),
    ];
    let out = push(
        &broker_args,
        &key_file,
        &v2_file,
        &[
            "--label",
            "v2",
            "--chunk-size",
            "1024",
            "--golden-input",
            test_model("golden-low.npy").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let done = final_state(&out);
    assert_eq!(done["state"], "committed", "{done}");
    assert_eq!(done["version"], v2.as_str());

    // The status shows the new version, committed; the file kept is the one signed for.
    let status = wait_status(&peer, &daemon, "v2 committed", |s| {
        s["models"][0]["version"] == v2.as_str() && s["models"][0]["trial"] == false
    });
    assert_eq!(status["models"][0]["label"], "v2");
    assert_eq!(status["models"][0]["update"]["what"], "committed");
    let installed = PathBuf::from(status["models"][0]["path"].as_str().unwrap());
    assert_eq!(sha(&installed), v2_sha);

    // Predictions kept flowing through the whole update, from v1 then from v2.
    let before = received(&peer).0.len();
    assert!(wait_until(WAIT, || received(&peer).0.len() > before + 50));
    let (_, _, all) = received(&peer);
    let versions: Vec<&str> = all
        .iter()
        .map(|p| p["model_version"].as_str().unwrap())
        .collect();
    let switch = versions.iter().position(|v| *v == v2).expect("v2 served");
    assert!(switch > 0 && versions[..switch].iter().all(|v| *v == v1));
    let daemon_log = daemon.log();
    let status_code = daemon.terminate(Duration::from_secs(10));
    assert!(status_code.success(), "{daemon_log}");
    assert_no_gap(&peer, &daemon_log);

    // Kept across a restart.
    let seen = peer.json_on(STATUS).len();
    let daemon = Daemon::start(&config);
    let fresh = || {
        peer.json_on(STATUS)
            .into_iter()
            .skip(seen)
            .find(|s| s["online"] == true)
    };
    wait_until(WAIT, || fresh().is_some());
    let status = fresh().unwrap_or_else(|| panic!("no status after the restart\n{}", daemon.log()));
    assert_eq!(status["models"][0]["version"], v2.as_str(), "{status}");
    assert_eq!(status["models"][0]["trial"], false);
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

/// What [`RemoteRig::start_and_push_v2`] leaves: the daemon, both versions, v2's file and the
/// push command's output.
struct Pushed {
    daemon: Daemon,
    v1: String,
    v2: String,
    v2_file: PathBuf,
    out: Output,
}

/// The OTA tests' rig: a device at 100 frames/s, a watcher of status, predictions, telemetry,
/// every transfer's progress and every command's result.
impl RemoteRig {
    fn ota() -> RemoteRig {
        RemoteRig::ota_with(remote_extra())
    }

    /// `extra` inside `[remote]`.
    fn ota_with(extra: &str) -> RemoteRig {
        RemoteRig::prepare(
            "watcher",
            &[
                STATUS,
                PREDICTIONS,
                TELEMETRY,
                "edgeinfer/t1/ota/+/progress",
                "edgeinfer/t1/cmd/+/result",
            ],
            100.0,
            extra,
        )
    }

    /// Starts the device on v1, waits until it is online, then pushes v2 with `args`.
    fn start_and_push_v2(&self, args: &[&str]) -> Pushed {
        let daemon = Daemon::start(&self.config);
        wait_status(&self.peer, &daemon, "online", |s| s["online"] == true);
        let v2_file = test_model("vibration-v2.onnx");
        Pushed {
            v1: version(&repo("models/vibration.onnx")),
            v2: version(&v2_file),
            out: push(&self.broker_args(), &self.key_file, &v2_file, args),
            v2_file,
            daemon,
        }
    }

    fn broker_args(&self) -> Vec<String> {
        vec!["--broker".into(), self.broker.url()]
    }

    fn progress(&self, transfer: &str) -> Vec<Value> {
        self.peer
            .json_on(&format!("edgeinfer/t1/ota/{transfer}/progress"))
    }

    /// Waits for a progress message of `transfer` that satisfies `f`.
    fn wait_progress(&self, daemon: &Daemon, transfer: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_until(WAIT, || self.progress(transfer).iter().any(&f));
        self.progress(transfer)
            .into_iter()
            .find(|p| f(p))
            .unwrap_or_else(|| {
                panic!(
                    "no such progress for {transfer}: {:?}\n{}",
                    self.progress(transfer),
                    daemon.log()
                )
            })
    }

    /// A signed manifest for `file` as transfer `transfer`.
    fn manifest(
        &self,
        transfer: &str,
        file: &Path,
        chunk_size: u32,
        tweak: impl FnOnce(&mut Manifest),
    ) -> Vec<u8> {
        let bytes = std::fs::read(file).unwrap();
        let mut m = Manifest {
            transfer: transfer.into(),
            model: "vibration".into(),
            label: None,
            size: bytes.len() as u64,
            sha256: sha(file),
            chunk_size,
            activate: Activation::Active,
            golden: None,
        };
        tweak(&mut m);
        signed_command(
            &self.key,
            "t1",
            protocol::MANIFEST_COMMAND,
            seq(),
            serde_json::to_value(&m).unwrap(),
        )
        .1
    }

    fn send_chunks(
        &self,
        transfer: &str,
        file: &Path,
        chunk_size: usize,
        which: impl IntoIterator<Item = usize>,
    ) {
        let bytes = std::fs::read(file).unwrap();
        for n in which {
            let chunk = &bytes[n * chunk_size..((n + 1) * chunk_size).min(bytes.len())];
            self.peer.publish(
                &protocol::topic::chunk("edgeinfer", "t1", transfer, n as u32),
                chunk.to_vec(),
            );
        }
    }
}

#[test]
fn bad_transfers_are_refused_with_their_reason_and_the_old_model_keeps_serving() {
    let rig = RemoteRig::ota();
    let daemon = Daemon::start(&rig.config);
    let v1 = version(&repo("models/vibration.onnx"));
    wait_status(&rig.peer, &daemon, "online", |s| s["online"] == true);
    let golden = test_model("golden-low.npy");
    let v2 = test_model("vibration-v2.onnx");

    // Signed by a key the device does not trust.
    let stranger = rig.dir.path().join("stranger.key");
    std::fs::write(
        &stranger,
        edgeinfer::manage::auth::signing_key_text(&operator_key()),
    )
    .unwrap();
    let out = push(&rig.broker_args(), &stranger, &v2, &[]);
    assert!(!out.status.success());
    assert_eq!(final_state(&out)["code"], "bad_signature", "{}", text(&out));

    // A file that is not what the manifest says.
    let m = rig.manifest("wrong-sha", &v2, 1024, |m| m.sha256 = "ab".repeat(32));
    rig.peer.publish(
        &protocol::topic::manifest("edgeinfer", "t1", "wrong-sha"),
        m,
    );
    rig.wait_progress(&daemon, "wrong-sha", |p| p["state"] == "receiving");
    rig.send_chunks("wrong-sha", &v2, 1024, 0..1);
    let p = rig.wait_progress(&daemon, "wrong-sha", |p| p["state"] == "rejected");
    assert_eq!(p["code"], "sha256_mismatch", "{p}");

    // A transfer cut short: the device says what is missing, and waits for it.
    let slow = test_model("vibration-slow.onnx");
    let size = std::fs::metadata(&slow).unwrap().len() as usize;
    let chunks = size.div_ceil(1024);
    let m = rig.manifest("short", &slow, 1024, |_| {});
    rig.peer
        .publish(&protocol::topic::manifest("edgeinfer", "t1", "short"), m);
    rig.wait_progress(&daemon, "short", |p| p["state"] == "receiving");
    rig.send_chunks("short", &slow, 1024, 0..chunks - 2);
    // Out of range, and of the wrong length.
    rig.peer.publish(
        &protocol::topic::chunk("edgeinfer", "t1", "short", (chunks + 5) as u32),
        vec![0u8; 1024],
    );
    rig.peer.publish(
        &protocol::topic::chunk("edgeinfer", "t1", "short", (chunks - 1) as u32),
        vec![0u8; 3],
    );
    rig.peer.publish(
        &protocol::topic::end("edgeinfer", "t1", "short"),
        Vec::new(),
    );
    let p = rig.wait_progress(&daemon, "short", |p| p["state"] == "incomplete");
    let last = (chunks - 1) as u64;
    assert_eq!(p["missing"], json!([[last - 1, last]]), "{p}");
    let refused: Vec<Value> = rig
        .progress("short")
        .into_iter()
        .filter(|p| p["state"] == "chunk_refused")
        .collect();
    let codes: BTreeSet<&str> = refused
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from(["chunk_out_of_range", "chunk_length"]),
        "{refused:?}"
    );

    // Not an ONNX model.
    let out = push(
        &rig.broker_args(),
        &rig.key_file,
        &test_model("not-a-model.onnx"),
        &[],
    );
    assert_eq!(final_state(&out)["code"], "not_loadable", "{}", text(&out));

    // A golden output that the model does not give.
    let wrong = rig.dir.path().join("wrong.npy");
    let tensor = tract_onnx::prelude::Tensor::from(
        tract_onnx::prelude::tract_ndarray::arr2(&[[0.5f32, 0.5]]).into_dyn(),
    );
    edgeinfer::npy::write(&wrong, &tensor).unwrap();
    let golden_args = ["--golden-input", golden.to_str().unwrap()];
    let mut args = golden_args.to_vec();
    args.extend(["--golden-output", wrong.to_str().unwrap()]);
    let out = push(&rig.broker_args(), &rig.key_file, &v2, &args);
    assert_eq!(
        final_state(&out)["code"],
        "golden_mismatch",
        "{}",
        text(&out)
    );

    // Nothing of the above changed what serves.
    assert_eq!(version_served(&rig.peer), Some(json!(v1)));

    // Passes its golden input, then fails on live frames: rolled back by the device itself,
    // and the frame it failed on is served by the old version.
    let out = push(
        &rig.broker_args(),
        &rig.key_file,
        &test_model("vibration-fails.onnx"),
        &golden_args,
    );
    assert!(!out.status.success());
    let done = final_state(&out);
    assert_eq!(
        (done["state"].as_str(), done["code"].as_str()),
        (Some("rolled_back"), Some("runtime_error")),
        "{}",
        text(&out)
    );
    assert!(
        done["reason"].as_str().unwrap().contains("ScatterND"),
        "{done}"
    );

    // Right but far slower than the version it would replace.
    let out = push(&rig.broker_args(), &rig.key_file, &slow, &golden_args);
    let done = final_state(&out);
    assert_eq!(
        (done["state"].as_str(), done["code"].as_str()),
        (Some("rolled_back"), Some("too_slow")),
        "{}",
        text(&out)
    );

    let status = wait_status(&rig.peer, &daemon, "v1 after the rollbacks", |s| {
        s["models"][0]["update"]["what"] == "rolled_back"
    });
    assert_eq!(status["models"][0]["version"], v1.as_str());
    assert_eq!(status["models"][0]["trial"], false);
    let before = received(&rig.peer).0.len();
    assert!(wait_until(WAIT, || received(&rig.peer).0.len() > before + 20));
    let (_, _, all) = received(&rig.peer);
    assert!(all
        .iter()
        .rev()
        .take(10)
        .all(|p| p["model_version"] == v1.as_str()));
    let log = daemon.log();
    assert!(daemon.terminate(Duration::from_secs(10)).success(), "{log}");
    assert_no_gap(&rig.peer, &log);
}

#[test]
fn an_interrupted_transfer_resumes_after_a_broker_restart_and_a_daemon_kill() {
    let mut rig = RemoteRig::ota();
    let mut daemon = Daemon::start(&rig.config);
    wait_status(&rig.peer, &daemon, "online", |s| s["online"] == true);
    let file = test_model("vibration-slow.onnx");
    let chunks = std::fs::metadata(&file).unwrap().len().div_ceil(1024) as usize;
    assert!(chunks >= 6);
    let transfer = format!("vibration-{}", version(&file));

    let m = rig.manifest(&transfer, &file, 1024, |m| m.activate = Activation::None);
    rig.peer
        .publish(&protocol::topic::manifest("edgeinfer", "t1", &transfer), m);
    rig.wait_progress(&daemon, &transfer, |p| p["state"] == "receiving");
    rig.send_chunks(&transfer, &file, 1024, 0..2);
    rig.peer.publish(
        &protocol::topic::end("edgeinfer", "t1", &transfer),
        Vec::new(),
    );
    rig.wait_progress(&daemon, &transfer, |p| {
        p["state"] == "incomplete" && p["received"] == 2
    });

    // The broker restarts: the sender asks again and is told only what is missing.
    rig.broker.restart();
    wait_until(WAIT, || daemon.count_lines("Management connected") >= 2);
    let peer = Recorder::connect(
        plain_options(rig.broker.port, "watcher-2"),
        &[STATUS, "edgeinfer/t1/ota/+/progress"],
    )
    .unwrap();
    rig.peer = peer;
    let m = rig.manifest(&transfer, &file, 1024, |m| m.activate = Activation::None);
    rig.peer
        .publish(&protocol::topic::manifest("edgeinfer", "t1", &transfer), m);
    let p = rig.wait_progress(&daemon, &transfer, |p| p["state"] == "receiving");
    assert_eq!(p["received"], 2, "{p}");
    assert_eq!(p["missing"], json!([[2, chunks - 1]]), "{p}");
    rig.send_chunks(&transfer, &file, 1024, 2..4);
    rig.peer.publish(
        &protocol::topic::end("edgeinfer", "t1", &transfer),
        Vec::new(),
    );
    rig.wait_progress(&daemon, &transfer, |p| {
        p["state"] == "incomplete" && p["received"] == 4
    });

    // The daemon is killed: after its restart it says where the transfer stands by itself.
    daemon.kill();
    let daemon = Daemon::start(&rig.config);
    let p = rig.wait_progress(&daemon, &transfer, |p| {
        p["state"] == "receiving" && p["received"] == 4
    });
    assert_eq!(p["missing"], json!([[4, chunks - 1]]), "{p}");
    assert!(
        daemon.log_contains("Model transfer resumes"),
        "{}",
        daemon.log()
    );

    // The operator tool completes it (same transfer id), sending only what is missing.
    let out = push(
        &rig.broker_args(),
        &rig.key_file,
        &file,
        &["--chunk-size", "1024", "--activate", "none"],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), daemon.log());
    let done = final_state(&out);
    assert_eq!(done["state"], "installed", "{done}");
    let state: Value = serde_json::from_slice(
        &std::fs::read(rig.dir.path().join("state/models/vibration/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["installed"]["sha256"], sha(&file).as_str(), "{state}");
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn a_shadow_run_reports_agreement_and_versions_are_switched_by_command() {
    let rig = RemoteRig::ota();
    let Pushed {
        daemon,
        v1,
        v2,
        v2_file,
        out,
    } = rig.start_and_push_v2(&["--activate", "shadow"]);
    assert_eq!(final_state(&out)["state"], "shadow", "{}", text(&out));
    wait_status(&rig.peer, &daemon, "a shadow", |s| {
        s["models"][0]["shadow"] == v2.as_str()
    });
    // v2 disagrees with v1 on 10 of every 60 readings.
    let t = rig
        .peer
        .wait_json(TELEMETRY, WAIT, |t| {
            t["shadow"]["vibration"]["frames"].as_u64() >= Some(120)
        })
        .unwrap_or_else(|| panic!("no shadow telemetry\n{}", daemon.log()));
    let shadow = &t["shadow"]["vibration"];
    assert_eq!(shadow["version"], v2.as_str());
    let agreement = shadow["agreement"].as_f64().unwrap();
    assert!((0.70..0.95).contains(&agreement), "{shadow}");
    assert!(shadow["latency"]["p50_us"].is_u64(), "{shadow}");
    // The predictions published are still v1's.
    let (_, _, all) = received(&rig.peer);
    assert!(all.iter().all(|p| p["model_version"] == v1.as_str()));

    // rollback-model ends the shadow run; activate-model puts v2 on trial.
    let r = rig.command("rollback-model", json!({ "model": "vibration" }));
    assert_eq!(r["result"]["shadow_ended"], v2.as_str(), "{r}");
    wait_status(&rig.peer, &daemon, "no shadow", |s| {
        s["models"][0]["shadow"].is_null()
    });
    let r = rig.command(
        "activate-model",
        json!({ "model": "vibration", "version": "0123456789", "mode": "active" }),
    );
    assert_eq!(r["error"]["code"], "unknown_version", "{r}");
    let r = rig.command(
        "activate-model",
        json!({ "model": "vibration", "version": v2, "mode": "active" }),
    );
    assert_eq!(r["ok"], true, "{r}");
    wait_status(&rig.peer, &daemon, "v2 committed", |s| {
        s["models"][0]["version"] == v2.as_str() && s["models"][0]["update"]["what"] == "committed"
    });
    let r = rig.command("list-models", json!({}));
    assert_eq!(
        r["result"]["versions"]["vibration"]["active"]["sha256"],
        sha(&v2_file).as_str(),
        "{r}"
    );

    // rollback-model goes back to the version that served before, at once.
    let r = rig.command("rollback-model", json!({ "model": "vibration" }));
    assert_eq!(r["result"]["serving"], v1.as_str(), "{r}");
    wait_status(&rig.peer, &daemon, "v1 again", |s| {
        s["models"][0]["version"] == v1.as_str()
    });
    let r = rig.command("rollback-model", json!({ "model": "vibration" }));
    assert_eq!(r["error"]["code"], "no_previous", "{r}");
    let log = daemon.log();
    assert!(daemon.terminate(Duration::from_secs(10)).success(), "{log}");
    assert_no_gap(&rig.peer, &log);
}

#[test]
fn a_trial_cut_short_by_a_crash_is_rolled_back_when_the_daemon_starts_again() {
    // A trial that never ends by itself.
    let rig = RemoteRig::ota_with("[remote.ota]\ntrial_predictions = 1000000\n");
    let Pushed {
        mut daemon,
        v1,
        v2,
        v2_file,
        out,
    } = rig.start_and_push_v2(&["--no-wait-commit"]);
    assert_eq!(final_state(&out)["state"], "activated", "{}", text(&out));
    wait_status(&rig.peer, &daemon, "v2 on trial", |s| {
        s["models"][0]["version"] == v2.as_str() && s["models"][0]["trial"] == true
    });

    daemon.kill();
    let daemon = Daemon::start(&rig.config);
    let status = wait_status(&rig.peer, &daemon, "v1 after the crash", |s| {
        s["online"] == true && s["models"][0]["update"]["code"] == "interrupted"
    });
    assert_eq!(status["models"][0]["version"], v1.as_str(), "{status}");
    assert!(daemon.log_contains("rolled back"), "{}", daemon.log());
    // The version stays installed, so the operator can try it again.
    let r = rig.command("list-models", json!({}));
    assert_eq!(
        r["result"]["versions"]["vibration"]["installed"]["sha256"],
        sha(&v2_file).as_str(),
        "{r}"
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
