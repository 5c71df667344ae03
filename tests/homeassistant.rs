//! Home Assistant discovery, on the demo config with `[homeassistant]` on: retained configs (one
//! device, availability from the status topic, unique ids), published again when Home Assistant
//! says it is online, and removed for a sensor that a reload dropped. Against a real broker;
//! and against a real Home Assistant core (scripts/ha-check.py) where scripts/test.sh set one up.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONFIGS: &str = "homeassistant/+/edgeinfer_demo/+/config";
const WHAT: [&str; 3] = ["label", "score", "fps"];

/// The demo config with its paths made absolute, its state in `dir`, the test's broker, the
/// sections for discovery, and without the sensors in `drop`.
fn demo_config(dir: &Path, broker: &str, drop: &[&str]) -> PathBuf {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let config_dir = repo("config");
    let mut text = demo
        .replace(
            "data_dir = \"../target/demo-state\"",
            &format!("data_dir = \"{}\"", dir.join("state").display()),
        )
        .replace("\"../", &format!("\"{}/", repo("").display()))
        .replace(
            "\"demo-data",
            &format!("\"{}/demo-data", config_dir.display()),
        )
        .replace("mqtt://127.0.0.1:1883", broker);
    for sensor in drop {
        let start = text
            .find(&format!("[[sensors]]\nid = \"{sensor}\""))
            .unwrap();
        let end = text[start + 1..]
            .find("\n[")
            .map(|e| start + 2 + e)
            .unwrap();
        text.replace_range(start..end, "");
    }
    text.push_str("\n[remote]\n\n[homeassistant]\nenabled = true\n");
    let path = dir.join("edgeinfer.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The non-empty retained configs a fresh subscriber gets, by topic.
fn retained_configs(port: u16) -> BTreeMap<String, Value> {
    let fresh = Recorder::connect(plain_options(port, "ha-fresh"), &[CONFIGS]).unwrap();
    // Retained messages arrive right after the subscription; give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    let configs = fresh
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(t, p)| (t.clone(), serde_json::from_slice(p).unwrap()))
        .collect();
    configs
}

fn config_topic(sensor: &str, what: &str) -> String {
    format!("homeassistant/sensor/edgeinfer_demo/{sensor}_{what}/config")
}

#[test]
fn discovery_is_retained_published_again_for_home_assistant_and_removed_with_its_sensor() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let sensors = ["cam0", "clip", "mic0", "serial0"];
    let config = demo_config(dir.path(), &broker.url(), &[]);
    let peer = Recorder::connect(
        plain_options(broker.port, "ha-peer"),
        &[CONFIGS, "edgeinfer/demo/state/+"],
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let all = sensors.len() * WHAT.len();
    let count_configs = || {
        peer.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, p)| t.ends_with("/config") && !p.is_empty())
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || count_configs() >= all),
        "{}",
        daemon.log()
    );

    // Retained, one device, availability from the status topic, unique ids of their own.
    let configs = retained_configs(broker.port);
    let expected: Vec<String> = sensors
        .iter()
        .flat_map(|s| WHAT.map(|w| config_topic(s, w)))
        .collect();
    assert_eq!(configs.keys().cloned().collect::<Vec<_>>(), {
        let mut e = expected.clone();
        e.sort();
        e
    });
    let mut unique_ids = std::collections::BTreeSet::new();
    for (topic, c) in &configs {
        assert!(
            unique_ids.insert(c["unique_id"].as_str().unwrap().to_string()),
            "{topic}"
        );
        assert_eq!(
            c["device"]["identifiers"],
            serde_json::json!(["edgeinfer_demo"])
        );
        assert_eq!(c["device"]["name"], "demo");
        assert_eq!(c["device"]["manufacturer"], "edgeinfer");
        assert_eq!(c["device"]["sw_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(c["origin"]["name"], "edgeinfer");
        assert_eq!(c["availability_topic"], "edgeinfer/demo/status");
        assert!(c["state_topic"]
            .as_str()
            .unwrap()
            .starts_with("edgeinfer/demo/state/"));
    }
    assert!(unique_ids.contains("edgeinfer_demo_cam0_label"));
    // The status it reads availability from, and a state with a label from the colour model.
    let status = peer_status(broker.port);
    assert_eq!(status["online"], true);
    let state = peer
        .wait_json("edgeinfer/demo/state/cam0", Duration::from_secs(30), |v| {
            v["label"].is_string() && v["model"] == "colour"
        })
        .unwrap_or_else(|| panic!("no state of cam0:\n{}", daemon.log()));
    assert!(state["score"].as_f64().unwrap() > 0.0, "{state}");

    // Home Assistant restarted: it says so, and gets every config again.
    let before = count_configs();
    peer.publish("homeassistant/status", "online");
    assert!(
        wait_until(Duration::from_secs(10), || count_configs() >= before + all),
        "{} configs after the birth, {before} before",
        count_configs()
    );

    // A reload without serial0: its entities are removed (empty retained configs), the others
    // stay.
    demo_config(dir.path(), &broker.url(), &["serial0"]);
    signal(daemon.pid(), "HUP");
    let removed = |what: &str| {
        peer.on(&config_topic("serial0", what))
            .iter()
            .any(|p| p.is_empty())
    };
    assert!(
        wait_until(Duration::from_secs(30), || WHAT.iter().all(|w| removed(w))),
        "{}",
        daemon.log()
    );
    let left = retained_configs(broker.port);
    assert_eq!(left.len(), 3 * WHAT.len(), "{:?}", left.keys());
    assert!(left.keys().all(|t| !t.contains("serial0")));
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

/// The device's retained status, as a fresh subscriber gets it.
fn peer_status(port: u16) -> Value {
    let fresh = Recorder::connect(plain_options(port, "ha-status"), &[STATUS_DEMO]).unwrap();
    fresh
        .wait_json(STATUS_DEMO, Duration::from_secs(30), |_| true)
        .expect("no retained status")
}

const STATUS_DEMO: &str = "edgeinfer/demo/status";

#[test]
fn a_real_home_assistant_shows_the_device_and_its_entities() {
    let venv = std::env::var_os("EDGEINFER_HA_VENV").expect(
        "EDGEINFER_HA_VENV names no Home Assistant environment: run the tests with scripts/test.sh, which makes one",
    );
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &broker.url(), &[]);
    let peer = Recorder::connect(
        plain_options(broker.port, "ha-peer"),
        &["edgeinfer/demo/state/+"],
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    // Every state with a label and a frame rate, so that every entity has a value to show.
    for sensor in ["cam0", "clip", "mic0", "serial0"] {
        peer.wait_json(
            &format!("edgeinfer/demo/state/{sensor}"),
            Duration::from_secs(60),
            |v| v["label"].is_string() && v["fps"].is_number(),
        )
        .unwrap_or_else(|| panic!("no full state of {sensor}:\n{}", daemon.log()));
    }
    let out = dir.path().join("ha.json");
    let check = std::process::Command::new(Path::new(&venv).join("bin/python"))
        .arg(repo("scripts/ha-check.py"))
        .args(["--broker-port", &broker.port.to_string(), "--venv"])
        .arg(&venv)
        .args(["--skip-pip", "--wait-entities", "12", "--timeout", "240"])
        .args(["--fail-on-discovery-error", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stderr),
        report["discovery_errors"]
    );
    let entities = report["mqtt_entities"].as_array().unwrap();
    let by_unique_id: BTreeMap<&str, &Value> = entities
        .iter()
        .map(|e| (e["unique_id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by_unique_id.len(), 12, "{entities:#?}");
    for sensor in ["cam0", "clip", "mic0", "serial0"] {
        let entity = |what: &str| by_unique_id[format!("edgeinfer_demo_{sensor}_{what}").as_str()];
        let label = entity("label");
        assert!(
            !["unavailable", "unknown", ""].contains(&label["state"].as_str().unwrap()),
            "{label:#}"
        );
        assert!(label["attributes"]["model"].is_string(), "{label:#}");
        let fps = entity("fps");
        assert!(
            fps["state"].as_str().unwrap().parse::<f64>().is_ok(),
            "{fps:#}"
        );
        let score = entity("score")["state"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        assert!((0.0..=1.0).contains(&score));
        let device = &label["device"];
        assert_eq!(
            device["identifiers"],
            serde_json::json!([["mqtt", "edgeinfer_demo"]])
        );
        assert_eq!(device["name"], "demo");
        assert_eq!(device["sw_version"], env!("CARGO_PKG_VERSION"));
    }
    let devices: std::collections::BTreeSet<&str> = entities
        .iter()
        .map(|e| e["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(devices.len(), 1, "one device for all entities");
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
