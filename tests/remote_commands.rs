//! Remote management against a real broker: retained status and last will, telemetry, signed
//! commands and the refusal of every bad one with its reason, random payloads on every command
//! topic, and `set-config`.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TELEMETRY: &str = "edgeinfer/t1/telemetry";
const WAIT: Duration = Duration::from_secs(30);

fn result_topic(name: &str) -> String {
    format!("edgeinfer/t1/cmd/{name}/result")
}

/// Publishes `payload` on command `name` and waits for the result that carries `id` (or, for
/// `None`, the next result on that topic).
fn ask(peer: &Recorder, name: &str, payload: Vec<u8>, id: Option<&str>) -> Value {
    let topic = result_topic(name);
    let before = peer.on(&topic).len();
    peer.publish(&format!("edgeinfer/t1/cmd/{name}"), payload);
    let mut found = None;
    wait_until(WAIT, || {
        found = peer
            .json_on(&topic)
            .into_iter()
            .skip(before)
            .find(|v| id.is_none_or(|id| v["id"] == id));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no result on {topic}"))
}

#[test]
fn status_is_retained_telemetry_flows_and_the_last_will_marks_a_killed_device_offline() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let key = operator_key();
    let config = remote_config(dir.path(), &broker.url(), &key, 20.0, "");
    let mut daemon = Daemon::start(&config);

    // A client that comes later still gets the status: it is retained.
    let peer = Recorder::connect(plain_options(broker.port, "watcher"), &[TELEMETRY]).unwrap();
    let status = Recorder::connect(plain_options(broker.port, "late"), &[STATUS]).unwrap();
    let online = status
        .wait_json(STATUS, WAIT, |v| v["online"] == true)
        .unwrap_or_else(|| panic!("no online status:\n{}", daemon.log()));
    assert_eq!(online["device"], "t1");
    assert_eq!(online["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(online["models"][0]["id"], "vibration");
    assert_eq!(online["models"][0]["version"].as_str().unwrap().len(), 12);
    assert!(online["models"][0]["backend"].is_string());
    assert_eq!(online["sensors"][0]["id"], "serial0");
    assert_eq!(online["sensors"][0]["type"], "line_replay");
    assert!(online["uptime_s"].is_u64());

    let telemetry = peer
        .wait_json(TELEMETRY, WAIT, |v| {
            v["sensors"]["serial0"]["fps"].as_f64() > Some(0.0)
                && v["models"]["vibration"]["p50_us"].is_u64()
        })
        .unwrap_or_else(|| panic!("no telemetry with rates:\n{}", daemon.log()));
    eprintln!("telemetry: {telemetry}");
    let latency = &telemetry["models"]["vibration"];
    assert!(latency["p99_us"].as_u64() >= latency["p50_us"].as_u64());
    assert!(telemetry["sensors"]["serial0"]["totals"]["captured"].as_u64() > Some(0));
    assert!(telemetry["outbox"]["records"].is_u64());
    assert!(telemetry["outbox"]["counters"]["appended"].as_u64() > Some(0));
    assert!(telemetry["rss_bytes"].as_u64() > Some(0));
    assert!(telemetry["cpu_percent"].is_number());
    assert!(telemetry["disk"]["free_bytes"].as_u64() > Some(0));
    assert!(telemetry["temperatures"].is_array());

    daemon.kill();
    let offline = status
        .wait_json(STATUS, WAIT, |v| v["online"] == false)
        .expect("the last will marks the device offline");
    assert_eq!(offline["reason"], "connection lost");
}

#[test]
fn signed_commands_are_answered_and_every_bad_one_is_refused_with_its_reason() {
    let RemoteDevice {
        daemon,
        peer,
        broker,
        key,
        config,
        dir,
        ..
    } = RemoteDevice::start("operator", &["edgeinfer/t1/cmd/+/result", "edgeinfer/t2/#"]);

    // Good ones.
    let started = Instant::now();
    let (ping_id, ping) = signed_command(&key, "t1", "ping", seq(), json!({}));
    let r = ask(&peer, "ping", ping.clone(), Some(&ping_id));
    eprintln!("ping round trip: {:?}", started.elapsed());
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["pong"], true);
    let (id, c) = signed_command(&key, "t1", "list-models", seq(), json!({}));
    let r = ask(&peer, "list-models", c, Some(&id));
    assert_eq!(r["result"]["models"][0]["id"], "vibration", "{r}");
    assert_eq!(r["result"]["models"][0]["sensors"][0], "serial0", "{r}");
    let (id, c) = signed_command(&key, "t1", "outbox-stats", seq(), json!({}));
    let r = ask(&peer, "outbox-stats", c, Some(&id));
    assert!(r["result"]["counters"]["appended"].is_u64(), "{r}");
    let (id, c) = signed_command(&key, "t1", "get-config", seq(), json!({}));
    let r = ask(&peer, "get-config", c, Some(&id));
    assert_eq!(
        r["result"]["toml"].as_str().unwrap(),
        std::fs::read_to_string(&config).unwrap()
    );
    let (id, c) = signed_command(
        &key,
        "t1",
        "restart-sensor",
        seq(),
        json!({"sensor": "serial0"}),
    );
    let r = ask(&peer, "restart-sensor", c, Some(&id));
    assert_eq!(r["ok"], true, "{r}");
    let (id, c) = signed_command(
        &key,
        "t1",
        "restart-sensor",
        seq(),
        json!({"sensor": "nope"}),
    );
    assert_eq!(
        ask(&peer, "restart-sensor", c, Some(&id))["error"]["code"],
        "unknown_sensor"
    );

    // Bad ones, each with its reason.
    let code = |r: Value| r["error"]["code"].as_str().unwrap_or_default().to_string();
    assert_eq!(code(ask(&peer, "ping", ping, Some(&ping_id))), "replayed");
    let unsigned = serde_json::to_vec(&json!({"id": "u1", "command": "ping"})).unwrap();
    assert_eq!(code(ask(&peer, "ping", unsigned, None)), "unsigned");
    let intruder = operator_key();
    let (_, forged) = signed_command(&intruder, "t1", "ping", seq(), json!({}));
    assert_eq!(code(ask(&peer, "ping", forged, None)), "bad_signature");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = edgeinfer::manage::auth::Envelope::sign(
        &edgeinfer::manage::auth::Command {
            id: "old".into(),
            device: "t1".into(),
            command: "ping".into(),
            issued_at: now - 120,
            expires_at: now - 60,
            seq: seq(),
            args: json!({}),
        },
        &key,
    );
    let r = ask(
        &peer,
        "ping",
        serde_json::to_vec(&expired).unwrap(),
        Some("old"),
    );
    assert_eq!(code(r), "expired");
    assert_eq!(
        code(ask(&peer, "ping", b"{\"payload\": ".to_vec(), None)),
        "malformed"
    );
    let (id, c) = signed_command(&key, "t1", "format-disk", seq(), json!({}));
    assert_eq!(
        code(ask(&peer, "format-disk", c, Some(&id))),
        "unknown_command"
    );
    let huge = vec![b'x'; 1 << 20];
    assert_eq!(code(ask(&peer, "ping", huge, None)), "too_large");
    // Signed for another device, sent to this one: refused.
    let (_, elsewhere) = signed_command(&key, "t2", "ping", seq(), json!({}));
    assert_eq!(
        code(ask(&peer, "ping", elsewhere.clone(), None)),
        "wrong_device"
    );
    // Sent under another device's id: this device does not react at all.
    peer.publish("edgeinfer/t2/cmd/ping", elsewhere);
    let (id, c) = signed_command(&key, "t1", "ping", seq(), json!({}));
    assert_eq!(ask(&peer, "ping", c, Some(&id))["ok"], true);
    assert!(peer.on("edgeinfer/t2/cmd/ping/result").is_empty());
    assert!(!daemon.log_contains("t2/cmd"), "{}", daemon.log());

    // The operator tool: keygen, then cmd.
    let key_file = dir.path().join("op.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .args(["keygen", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("op.key.pub"))
            .unwrap()
            .trim(),
        public
    );
    let cli = |key: &std::path::Path, name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
            .args(["cmd", "--broker", &broker.url(), "--device", "t1", "--key"])
            .arg(key)
            .arg(name)
            .output()
            .unwrap()
    };
    // Not an operator of this device yet.
    let out = cli(&key_file, "ping");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bad_signature"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let op = dir.path().join("known.key");
    std::fs::write(&op, edgeinfer::manage::auth::signing_key_text(&key)).unwrap();
    let out = cli(&op, "ping");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["result"]["pong"], true);

    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn set_config_refuses_an_invalid_config_whole_and_applies_a_valid_one_that_survives_a_restart() {
    // The broker is bound so that it lives to the end of the test.
    let RemoteDevice {
        daemon,
        peer,
        broker: _broker,
        key,
        config,
        spec,
        dir,
        ..
    } = RemoteDevice::start("operator", &["edgeinfer/t1/cmd/+/result"]);
    let original = std::fs::read_to_string(&config).unwrap();

    // Three mistakes at once: all are reported.
    let mut invalid = LineConfig {
        device: "t9".into(),
        mqtt_extra: "keep_alive_secs = 1\n".into(),
        ..spec.clone()
    };
    invalid.remote.as_mut().unwrap().telemetry_interval_secs = Some(0);
    let invalid = invalid.toml();
    let (id, c) = signed_command(&key, "t1", "set-config", seq(), json!({ "toml": invalid }));
    let r = ask(&peer, "set-config", c, Some(&id));
    assert_eq!(r["error"]["code"], "invalid_config", "{r}");
    let details: Vec<String> = r["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    for path in [
        "remote.telemetry_interval_secs",
        "mqtt.keep_alive_secs",
        "device.id",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(path)),
            "{path} not in {details:?}"
        );
    }
    let (id, c) = signed_command(
        &key,
        "t1",
        "set-config",
        seq(),
        json!({ "toml": "[device" }),
    );
    assert_eq!(
        ask(&peer, "set-config", c, Some(&id))["error"]["code"],
        "invalid_config"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(!dir.path().join("edgeinfer.toml.prev").exists());

    // A valid one: a second sensor.
    let readings = dir.path().join("readings.csv");
    let valid = format!(
        "{original}{}",
        line_sensor_toml("serial1", "vibration", &readings, Some(20.0))
    );
    let (id, c) = signed_command(&key, "t1", "set-config", seq(), json!({ "toml": valid }));
    let r = ask(&peer, "set-config", c, Some(&id));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), valid);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("edgeinfer.toml.prev")).unwrap(),
        original
    );
    assert!(
        peer.wait_json(STATUS, WAIT, |v| v["online"] == true
            && v["sensors"].as_array().map(Vec::len) == Some(2))
            .is_some(),
        "the new sensor is not running:\n{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());

    // After a restart the new config is still the one in effect.
    let seen = peer.on(STATUS).len();
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(WAIT, || peer.json_on(STATUS)[seen..]
            .iter()
            .any(|v| v["online"] == true)),
        "{}",
        daemon.log()
    );
    let (id, c) = signed_command(&key, "t1", "list-models", seq(), json!({}));
    let r = ask(&peer, "list-models", c, Some(&id));
    assert_eq!(
        r["result"]["models"][0]["sensors"],
        json!(["serial0", "serial1"]),
        "{r}\n{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
