//! Random payloads on every command topic: each one is answered with an error, and the daemon
//! keeps serving.

use crate::support::*;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

const NAMES: &[&str] = &[
    "ping",
    "get-config",
    "set-config",
    "restart-sensor",
    "list-models",
    "outbox-stats",
    "activate-model",
    "rollback-model",
    "no-such-command",
];

/// Payloads shaped to get past the first checks: random bytes, random JSON, envelopes with
/// random fields, and real signatures over random payload text.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let key = operator_key();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        "\\PC{0,300}".prop_map(|s| s.into_bytes()),
        ("\\PC{0,200}", "[A-Za-z0-9+/=]{0,100}").prop_map(|(p, s)| {
            serde_json::to_vec(&json!({"payload": p, "signature": s})).unwrap()
        }),
        "\\PC{0,200}".prop_map(move |p| {
            use base64::Engine;
            use ed25519_dalek::Signer;
            let sig = key.sign(p.as_bytes());
            serde_json::to_vec(&json!({
                "payload": p,
                "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
            }))
            .unwrap()
        }),
    ]
}

/// Publishes 200 cases drawn from `strategy`, each as the topic and payload
/// `topic_and_payload` makes of it; returns how many were sent.
fn publish_cases<S: Strategy>(
    peer: &Recorder,
    strategy: S,
    topic_and_payload: impl Fn(S::Value) -> (String, Vec<u8>),
) -> usize {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let sent = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |case| {
            let (topic, bytes) = topic_and_payload(case);
            peer.publish(&topic, bytes);
            sent.set(sent.get() + 1);
            Ok(())
        })
        .unwrap();
    sent.get()
}

/// Waits until `sent` answers have arrived on topics ending in `suffix`; returns them all.
fn wait_answers(
    peer: &Recorder,
    daemon: &Daemon,
    suffix: &str,
    sent: usize,
) -> Vec<serde_json::Value> {
    let answers = || -> Vec<serde_json::Value> {
        peer.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(60), || answers().len() >= sent),
        "{} answers for {sent} messages; log:\n{}",
        answers().len(),
        daemon.log()
    );
    answers()
}

#[test]
fn random_payloads_on_every_command_topic_are_answered_and_the_daemon_keeps_serving() {
    // The broker and the folder are bound so that they live to the end of the test.
    let RemoteDevice {
        daemon,
        peer,
        broker: _broker,
        key,
        dir: _dir,
        ..
    } = RemoteDevice::start("fuzzer", &["edgeinfer/t1/cmd/+/result"]);

    let sent = publish_cases(&peer, (0..NAMES.len(), payload()), |(name, bytes)| {
        (format!("edgeinfer/t1/cmd/{}", NAMES[name]), bytes)
    });
    for v in wait_answers(&peer, &daemon, "/result", sent) {
        assert_eq!(v["ok"], false, "a random payload was obeyed: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    // Still serving commands and predictions.
    let (id, ping) = signed_command(&key, "t1", "ping", u64::MAX / 2, json!({}));
    peer.publish("edgeinfer/t1/cmd/ping", ping);
    assert!(
        peer.wait_json(
            "edgeinfer/t1/cmd/ping/result",
            Duration::from_secs(30),
            |v| v["id"] == id.as_str() && v["ok"] == true
        )
        .is_some(),
        "{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}

#[test]
fn random_messages_on_the_update_topics_are_refused_and_change_nothing() {
    let RemoteDevice {
        daemon,
        peer,
        broker: _broker,
        online,
        dir,
        ..
    } = RemoteDevice::start("fuzzer", &["edgeinfer/t1/ota/+/progress"]);

    let level = "[A-Za-z0-9_.-]{1,12}";
    let sent = publish_cases(
        &peer,
        (0..3usize, level, "[0-9a-z-]{1,6}", payload()),
        |(kind, transfer, n, bytes)| {
            let topic = match kind {
                0 => format!("edgeinfer/t1/ota/{transfer}/manifest"),
                1 => format!("edgeinfer/t1/ota/{transfer}/chunk/{n}"),
                _ => format!("edgeinfer/t1/ota/{transfer}/end"),
            };
            (topic, bytes)
        },
    );
    // Every message is answered: a refused manifest, a chunk or an end of no known transfer.
    for v in wait_answers(&peer, &daemon, "/progress", sent) {
        assert!(
            v["state"] == "rejected" || v["state"] == "chunk_refused",
            "a random message was taken: {v}"
        );
        assert!(v["code"].is_string(), "{v}");
    }
    // Nothing was staged or installed, and the model serving is the one it was.
    let staged = std::fs::read_dir(dir.path().join("state/ota"))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    assert_eq!(staged, 0);
    assert!(!dir.path().join("state/models").exists());
    let last = peer.json_on("edgeinfer/t1/status").last().cloned().unwrap();
    assert_eq!(last["models"][0]["version"], online["models"][0]["version"]);
    assert!(daemon.log_contains("Prediction stored"));
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
