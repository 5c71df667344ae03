//! Fleet commands against several real daemons on one broker: `fleet status` shows each device
//! with its labels and versions and a killed one offline; `fleet rollout` aborts its later waves
//! when too many devices reject the model, resumes after the operator is killed without pushing
//! again to devices that committed, and under the shadow gate activates the candidate only where
//! it agrees with the serving model; bad input is refused before anything is sent.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const MANIFESTS: &str = "edgeinfer/+/ota/+/manifest";

/// One device of a test fleet.
struct Member {
    id: &'static str,
    /// Inside `labels = { ... }`.
    labels: &'static str,
    /// Lines inside `[remote.ota]`.
    ota: &'static str,
    /// (temperature, vibration) readings it replays; the shared readings when empty.
    readings: Vec<(f64, f64)>,
}

impl Member {
    fn new(id: &'static str, labels: &'static str) -> Member {
        Member {
            id,
            labels,
            ota: "",
            readings: Vec::new(),
        }
    }
}

/// Daemons on one broker, all trusting one operator key, and a peer that records every status
/// and every manifest sent. Fields drop in order: daemons, peer, broker, folder.
struct Fleet {
    daemons: BTreeMap<String, Daemon>,
    peer: Recorder,
    broker: Broker,
    key_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start(members: &[Member]) -> Fleet {
        let broker = Broker::start();
        let dir = tempfile::tempdir().unwrap();
        let key = operator_key();
        let key_file = dir.path().join("operator.key");
        std::fs::write(&key_file, edgeinfer::manage::auth::signing_key_text(&key)).unwrap();
        let peer = Recorder::connect(
            plain_options(broker.port, "fleet-watcher"),
            &["edgeinfer/+/status", MANIFESTS],
        )
        .unwrap();
        let mut daemons = BTreeMap::new();
        for m in members {
            let home = dir.path().join(m.id);
            std::fs::create_dir_all(&home).unwrap();
            let mut spec = LineConfig::remote(&home, &broker.url(), &key, 50.0);
            spec.device = m.id.into();
            spec.device_extra = format!("labels = {{ {} }}\n", m.labels);
            let trial = if m.ota.contains("trial_predictions") {
                ""
            } else {
                "trial_predictions = 40\n"
            };
            spec.remote.as_mut().unwrap().extra = format!(
                "[remote.ota]\n{trial}trial_latency_slack_ms = 2\n{}\n",
                m.ota
            );
            if !m.readings.is_empty() {
                spec.readings = home.join("own-readings.csv");
                write_pairs(&spec.readings, &m.readings);
            }
            let config = spec.write(&home.join("edgeinfer.toml"));
            daemons.insert(m.id.to_string(), Daemon::start(&config));
        }
        let fleet = Fleet {
            daemons,
            peer,
            broker,
            key_file,
            dir,
        };
        for id in fleet.daemons.keys() {
            fleet.wait_status(id, "online", |s| s["online"] == true);
        }
        fleet
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|(id, d)| format!("--- {id}\n{}", d.log()))
            .collect()
    }

    fn wait_status(&self, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let topic = format!("edgeinfer/{id}/status");
        self.peer
            .wait_json(&topic, WAIT, |s| f(s))
            .unwrap_or_else(|| {
                panic!(
                    "{id} never showed {what}: {:?}\n{}",
                    self.peer.json_on(&topic).last(),
                    self.logs()
                )
            })
    }

    /// The last status of `id`.
    fn status(&self, id: &str) -> Value {
        self.peer
            .json_on(&format!("edgeinfer/{id}/status"))
            .pop()
            .unwrap_or_default()
    }

    /// Manifests sent to `id` so far.
    fn manifests(&self, id: &str) -> usize {
        let prefix = format!("edgeinfer/{id}/ota/");
        self.peer
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.starts_with(&prefix) && t.ends_with("/manifest"))
            .count()
    }

    /// `edgeinfer fleet` with the broker (and for a rollout the key) after `args`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgeinfer"));
        c.arg("fleet")
            .args(args)
            .args(["--broker", &self.broker.url()]);
        if args[0] == "rollout" {
            c.arg("--key").arg(&self.key_file);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The tests' rollout state file.
    fn state(&self) -> PathBuf {
        self.dir.path().join("rollout.json")
    }

    /// `fleet rollout` of the second version of the model with the tests' state file and
    /// `args`, whose exit status must be `code`: its report, and its devices by id.
    fn rollout(&self, code: i32, args: &[&str]) -> (Value, BTreeMap<String, Value>) {
        let (file, state) = (v2_file(), self.state());
        let mut all = vec!["rollout", "--model", "vibration", "--file"];
        all.extend([file.to_str().unwrap(), "--state", state.to_str().unwrap()]);
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}\n{}",
            text(&out),
            self.logs()
        );
        report(&out)
    }

    /// `fleet status --json` with `args`, by device id.
    fn view(&self, args: &[&str]) -> BTreeMap<String, Value> {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{}", text(&out));
        let devices: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        devices
            .into_iter()
            .map(|d| (d["device"].as_str().unwrap().to_string(), d))
            .collect()
    }
}

/// Readings of (temperature, vibration), humidity 50.
fn write_pairs(path: &Path, pairs: &[(f64, f64)]) {
    let mut text = String::from("seconds,temperature,humidity,vibration\n");
    for (i, (t, v)) in pairs.iter().enumerate() {
        text.push_str(&format!("{i},{t},50,{v}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn version(path: &Path) -> String {
    edgeinfer::model::sha256_file(path).unwrap()[..12].to_string()
}

fn v2_file() -> PathBuf {
    repo("models/test/vibration-v2.onnx")
}

/// The JSON report a rollout printed, by device.
fn report(out: &Output) -> (Value, BTreeMap<String, Value>) {
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}):\n{}", text(out)));
    let devices = report["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w.as_array().unwrap().clone())
        .map(|d| (d["device"].as_str().unwrap().to_string(), d))
        .collect();
    (report, devices)
}

#[test]
fn status_shows_each_device_with_labels_and_versions_and_a_killed_one_offline() {
    let mut fleet = Fleet::start(&[
        Member::new("barn-1", r#"site = "barn", board = "pi4""#),
        Member::new("barn-2", r#"site = "barn", board = "pi5""#),
        Member::new("shop-1", r#"site = "shop", board = "pi4""#),
    ]);
    let v1 = version(&repo("models/vibration.onnx"));
    // Telemetry is retained: wait for every device's first.
    wait_until(WAIT, || {
        fleet
            .view(&[])
            .values()
            .all(|d| d["telemetry_at"].is_string())
    });
    let all = fleet.view(&[]);
    assert_eq!(all.len(), 3, "{all:?}");
    let barn2 = &all["barn-2"];
    assert_eq!(barn2["online"], true);
    assert_eq!(barn2["labels"]["board"], "pi5");
    assert_eq!(barn2["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(barn2["models"][0]["id"], "vibration");
    assert_eq!(barn2["models"][0]["version"], v1.as_str());
    assert_eq!(barn2["models"][0]["backend"], "tract");
    assert!(
        barn2["connected_at"].is_string() && barn2["backlog"].is_u64(),
        "{barn2}"
    );

    let barn = fleet.view(&["--select", "site=barn"]);
    assert_eq!(barn.keys().collect::<Vec<_>>(), ["barn-1", "barn-2"]);
    let pi4_barn = fleet.view(&["--select", "site=barn,board=pi4"]);
    assert_eq!(pi4_barn.keys().collect::<Vec<_>>(), ["barn-1"]);
    let shops = fleet.view(&["--device", "shop-*"]);
    assert_eq!(shops.keys().collect::<Vec<_>>(), ["shop-1"]);

    let table = fleet.run(&["status"]);
    let table_text = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.status.success(), "{}", text(&table));
    assert!(table_text.starts_with("DEVICE"), "{table_text}");
    let row = table_text
        .lines()
        .find(|l| l.starts_with("shop-1"))
        .unwrap();
    assert!(
        row.contains("online") && row.contains(&format!("vibration={v1}/tract")),
        "{row}"
    );
    assert!(row.contains("board=pi4,site=shop"), "{row}");

    fleet.daemons.get_mut("barn-2").unwrap().kill();
    fleet.wait_status("barn-2", "offline", |s| s["online"] == false);
    let after = fleet.view(&[]);
    assert_eq!(after["barn-2"]["online"], false);
    assert_eq!(after["barn-2"]["reason"], "connection lost");
    assert_eq!(
        after["barn-2"]["labels"]["site"], "barn",
        "the will keeps the labels"
    );
    assert_eq!(after["barn-1"]["online"], true);
    let table = fleet.run(&["status"]);
    let table_text = String::from_utf8_lossy(&table.stdout).to_string();
    let row = table_text
        .lines()
        .find(|l| l.starts_with("barn-2"))
        .unwrap();
    assert!(row.contains("offline") && row.contains("seen "), "{row}");

    let unknown = fleet.run(&["status", "--select", "sight=barn"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no device has the label sight"));
}

#[test]
fn a_rollout_aborts_its_later_waves_once_too_many_devices_reject_the_model() {
    let small = "max_model_bytes = 100";
    let fleet = Fleet::start(&[
        Member {
            ota: small,
            ..Member::new("f1", r#"site = "a""#)
        },
        Member {
            ota: small,
            ..Member::new("f2", r#"site = "a""#)
        },
        Member::new("f3", r#"site = "a""#),
        Member::new("f4", r#"site = "a""#),
        Member::new("f5", r#"site = "a""#),
        Member::new("f6", r#"site = "a""#),
    ]);
    let (report, devices) = fleet.rollout(
        1,
        &[
            "--select",
            "site=a",
            "--waves",
            "3,100%",
            "--max-failures",
            "30%",
            "--min-devices",
            "3",
            "--wait-mins",
            "1",
        ],
    );
    assert!(
        report["aborted"]
            .as_str()
            .unwrap()
            .contains("2 of 3 devices failed"),
        "{report}"
    );
    for id in ["f1", "f2"] {
        assert_eq!(devices[id]["state"], "rejected", "{report}");
        assert_eq!(devices[id]["code"], "bad_manifest", "{report}");
    }
    assert_eq!(devices["f3"]["state"], "committed", "{report}");
    assert_eq!(report["switched"], serde_json::json!(["f3"]));
    let v2 = version(&v2_file());
    fleet.wait_status("f3", "v2 serving", |s| {
        s["models"][0]["version"] == v2.as_str()
    });
    for id in ["f4", "f5", "f6"] {
        assert_eq!(devices[id]["state"], "skipped", "{report}");
        assert_eq!(fleet.manifests(id), 0, "{id} was sent a manifest");
        assert_ne!(fleet.status(id)["models"][0]["version"], v2.as_str());
    }
    // The state file says the same.
    let saved: Value = serde_json::from_slice(&std::fs::read(fleet.state()).unwrap()).unwrap();
    assert_eq!(saved["devices"]["f4"]["state"], "skipped");
    assert!(saved["aborted"].is_string());
}

#[test]
fn a_killed_operator_resumes_without_pushing_again_to_a_device_that_committed() {
    // The second wave's devices stay on trial for a while, so the operator is killed while
    // they are being updated.
    let slow = "trial_predictions = 400";
    let fleet = Fleet::start(&[
        Member::new("r1", r#"site = "b""#),
        Member {
            ota: slow,
            ..Member::new("r2", r#"site = "b""#)
        },
        Member {
            ota: slow,
            ..Member::new("r3", r#"site = "b""#)
        },
    ]);
    let state = fleet.dir.path().join("rollout.json");
    let file = v2_file();
    let args = [
        "rollout",
        "--model",
        "vibration",
        "--file",
        file.to_str().unwrap(),
        "--waves",
        "1,100%",
        "--max-failures",
        "0%",
        "--wait-mins",
        "2",
        "--state",
        state.to_str().unwrap(),
    ];
    let mut operator = fleet
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let saved = || -> Value {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    let r1_done = wait_until(WAIT, || saved()["devices"]["r1"]["state"] == "committed");
    assert!(r1_done, "r1 never committed: {}\n{}", saved(), fleet.logs());
    wait_until(WAIT, || {
        fleet.manifests("r2") > 0 && fleet.manifests("r3") > 0
    });
    operator.kill().unwrap();
    operator.wait().unwrap();
    let before = saved();
    assert_ne!(before["devices"]["r2"]["state"], "committed", "{before}");
    let r1_manifests = fleet.manifests("r1");

    // A new rollout over the same state file is refused; --resume goes on.
    let again = fleet.run(&args);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let out = fleet.run(&[
        "rollout",
        "--resume",
        "--state",
        state.to_str().unwrap(),
        "--wait-mins",
        "2",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), fleet.logs());
    let (report, devices) = report(&out);
    for id in ["r1", "r2", "r3"] {
        assert_eq!(devices[id]["state"], "committed", "{report}");
    }
    assert_eq!(devices["r1"]["pushes"], 1, "{report}");
    assert_eq!(
        fleet.manifests("r1"),
        r1_manifests,
        "r1 was pushed to again"
    );
    let v2 = version(&v2_file());
    for id in ["r1", "r2", "r3"] {
        fleet.wait_status(id, "v2 serving", |s| {
            s["models"][0]["version"] == v2.as_str() && s["models"][0]["trial"] == false
        });
    }
}

#[test]
fn the_shadow_gate_activates_the_candidate_where_it_agrees_and_not_where_it_does_not() {
    // The candidate gives another class than the serving model for temperatures in (50, 60]
    // with vibration up to 2, and the same class elsewhere.
    let agree: Vec<(f64, f64)> = (0..40)
        .map(|i| (40.0 + (i % 10) as f64, 0.5 + (i % 5) as f64 * 0.5))
        .collect();
    let disagree: Vec<(f64, f64)> = (0..40)
        .map(|i| (51.0 + (i % 9) as f64, 0.5 + (i % 4) as f64 * 0.4))
        .collect();
    let fleet = Fleet::start(&[
        Member {
            readings: agree,
            ..Member::new("g1", r#"site = "c""#)
        },
        Member {
            readings: disagree,
            ..Member::new("g2", r#"site = "c""#)
        },
    ]);
    let (report, devices) = fleet.rollout(
        1,
        &[
            "--waves",
            "100%",
            "--max-failures",
            "100%",
            "--shadow-predictions",
            "100",
            "--min-agreement",
            "0.98",
            "--wait-mins",
            "2",
        ],
    );
    assert_eq!(devices["g1"]["state"], "committed", "{report}");
    assert!(
        devices["g1"]["agreement"].as_f64() >= Some(0.98),
        "{report}"
    );
    assert!(devices["g1"]["frames"].as_u64() >= Some(100), "{report}");
    assert_eq!(devices["g2"]["state"], "disagreed", "{report}");
    assert!(devices["g2"]["agreement"].as_f64() < Some(0.5), "{report}");
    let v1 = version(&repo("models/vibration.onnx"));
    let v2 = version(&v2_file());
    fleet.wait_status("g1", "v2 committed", |s| {
        s["models"][0]["version"] == v2.as_str() && s["models"][0]["trial"] == false
    });
    fleet.wait_status("g2", "v1 serving, no shadow", |s| {
        s["models"][0]["version"] == v1.as_str() && s["models"][0]["shadow"].is_null()
    });
}

#[test]
fn bad_rollout_input_is_refused_before_anything_is_sent() {
    let fleet = Fleet::start(&[Member::new("b1", r#"site = "d""#)]);
    let file = v2_file();
    let file = file.to_str().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let mut all = vec!["rollout", "--model", "vibration"];
        all.extend_from_slice(args);
        let out = fleet.run(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle),
            "{args:?}: wanted {needle:?} in\n{stderr}"
        );
    };
    refused(
        &["--file", file, "--select", "sight=d"],
        "no device has the label sight",
    );
    refused(
        &["--file", file, "--waves", "1,50%"],
        "does not reach every device",
    );
    refused(
        &["--file", file, "--max-failures", "150%"],
        "within 0% and 100%",
    );
    refused(
        &["--file", file, "--max-failures=-1%"],
        "within 0% and 100%",
    );
    let garbage = repo("models/test/not-a-model.onnx");
    refused(
        &["--file", garbage.to_str().unwrap()],
        "not a model this rollout can send",
    );
    refused(
        &["--file", file, "--select", "site=nowhere"],
        "no device selected",
    );
    let out = fleet.run(&["rollout", "--model", "other", "--file", file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model \"other\" on b1"));
    // A dry run prints the waves and sends nothing either.
    let dry = fleet.run(&[
        "rollout",
        "--model",
        "vibration",
        "--file",
        file,
        "--dry-run",
    ]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("wave 1: 1 devices: b1"));
    assert_eq!(fleet.manifests("b1"), 0);
}
