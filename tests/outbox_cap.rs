//! With the broker away and a small cap, the outbox stays under its cap and applies its policy,
//! counting every drop; what it keeps is what the policy says.

use crate::support::*;
use edgeinfer::config::{OutboxConfig, WhenFull};
use edgeinfer::outbox::Outbox;
use edgeinfer::prediction::Prediction;

const CAP: u64 = 8192;
const N: u64 = 200;

fn run_offline(policy: &str) -> (edgeinfer::outbox::OutboxStats, Vec<u64>, String) {
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, N as usize);
    // Nothing listens on this port: the broker is away for the whole run.
    let broker = format!("mqtt://127.0.0.1:{}", free_port());
    let outbox = format!("[outbox]\nmax_bytes = {CAP}\nwhen_full = \"{policy}\"\n");
    let config = line_config(dir.path(), &readings, None, &broker, &outbox);
    let log = run_to_end(&config);

    let when_full = if policy == "drop_oldest" {
        WhenFull::DropOldest
    } else {
        WhenFull::DropNewest
    };
    let cfg = OutboxConfig {
        max_bytes: CAP,
        when_full,
        ..OutboxConfig::default()
    };
    let ob = Outbox::open(&dir.path().join("state/outbox"), &cfg).unwrap();
    let frames = ob
        .pending(&mut edgeinfer::outbox::Cursor::all(), 10_000)
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Prediction>(&r.payload)
                .unwrap()
                .frame_seq
        })
        .collect();
    (ob.stats(), frames, log)
}

#[test]
fn drop_oldest_keeps_the_newest_predictions_under_the_cap() {
    let (stats, frames, log) = run_offline("drop_oldest");
    assert!(stats.bytes <= CAP, "{stats:?}");
    assert_eq!(stats.counters.appended, N);
    assert!(stats.counters.dropped_oldest > 0);
    assert_eq!(
        stats.counters.dropped_oldest + stats.records,
        N,
        "{stats:?}"
    );
    let kept = frames.len() as u64;
    assert_eq!(frames, (N - kept..N).collect::<Vec<_>>());
    assert!(
        log.contains("oldest predictions are being dropped"),
        "{log}"
    );
}

#[test]
fn drop_newest_keeps_the_first_predictions_under_the_cap() {
    let (stats, frames, log) = run_offline("drop_newest");
    assert!(stats.bytes <= CAP, "{stats:?}");
    assert!(stats.counters.dropped_newest > 0);
    assert_eq!(
        stats.counters.appended + stats.counters.dropped_newest,
        N,
        "{stats:?}"
    );
    assert_eq!(stats.records, stats.counters.appended);
    assert_eq!(frames, (0..frames.len() as u64).collect::<Vec<_>>());
    assert!(log.contains("new predictions are being dropped"), "{log}");
}
