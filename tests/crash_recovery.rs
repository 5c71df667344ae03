//! SIGKILL at any moment loses nothing that reached the outbox: after a restart every stored
//! prediction is delivered; duplicates only for messages that were in flight, identifiable by id.

use crate::support::*;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// These tests take "Prediction stored" as the durability point, which it is with this setting;
/// `outbox_faults.rs` covers the default batch durability.
const EVERY_RECORD: &str = "[outbox]\ndurability = \"every_record\"\n";

/// `max_inflight` in the test config (the default): the most publishes awaiting PUBACK at a kill.
const MAX_INFLIGHT: usize = 32;

fn check_delivery(stored: &[String], received: &[String]) {
    let got: BTreeSet<&String> = received.iter().collect();
    let missing: Vec<&String> = stored.iter().filter(|id| !got.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} stored predictions never arrived: {missing:?}",
        missing.len()
    );
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in received {
        *counts.entry(id).or_default() += 1;
    }
    let dups: Vec<(&String, usize)> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        dups.len() <= MAX_INFLIGHT && dups.iter().all(|(_, n)| *n == 2),
        "more duplicates than messages in flight: {dups:?}"
    );
}

/// Starts the daemon, SIGKILLs it once it has stored `at_least` predictions; returns their ids.
fn run_and_kill(config: &std::path::Path, at_least: usize) -> Vec<String> {
    let mut first = Daemon::start(config);
    assert!(
        wait_until(Duration::from_secs(20), || first.stored_ids().len()
            >= at_least),
        "{}",
        first.log()
    );
    first.kill();
    first.stored_ids()
}

/// Restarts the daemon and waits until every id in `stored` has reached the consumer; returns the
/// ids the second run stored.
fn restart_until_delivered(
    config: &std::path::Path,
    consumer: &Recorder,
    stored: &[String],
) -> BTreeSet<String> {
    let second = Daemon::start(config);
    let lines = second.lines.clone();
    let delivered = wait_until(Duration::from_secs(30), || {
        let got: BTreeSet<String> = consumer.ids().into_iter().collect();
        stored.iter().all(|id| got.contains(id))
    });
    let log = second.log();
    let status = second.terminate(Duration::from_secs(10));
    assert!(
        delivered,
        "stored before the kill but not delivered after restart:\n{log}"
    );
    assert!(status.success());
    check_delivery(stored, &consumer.ids());
    let second_stored = stored_ids_in(&lines.lock().unwrap());
    second_stored.into_iter().collect()
}

#[test]
fn sigkill_while_publishing_then_restart_delivers_every_stored_prediction() {
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 400);
    let config = line_config(
        dir.path(),
        &readings,
        Some(200.0),
        &broker.url(),
        EVERY_RECORD,
    );

    let stored_first = run_and_kill(&config, 100);
    // The restart replays the file again (new ids) and must also send what the first run left behind.
    restart_until_delivered(&config, &consumer, &stored_first);
}

#[test]
fn sigkill_while_the_broker_is_down_then_restart_delivers_the_whole_backlog() {
    let mut broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 150);
    let config = line_config(
        dir.path(),
        &readings,
        Some(300.0),
        &broker.url(),
        EVERY_RECORD,
    );

    let stored_first = run_and_kill(&config, 80);
    assert_eq!(consumer.count(), 0);
    broker.restart();
    let stored_second = restart_until_delivered(&config, &consumer, &stored_first);
    // The backlog went out oldest first and marked historical; the second run's own predictions
    // went live beside it.
    let ids = consumer.ids();
    let mut pos: HashMap<&String, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        pos.entry(id).or_insert(i);
    }
    let order: Vec<usize> = stored_first.iter().map(|id| pos[id]).collect();
    let sorted = {
        let mut s = order.clone();
        s.sort();
        s
    };
    assert_eq!(order, sorted, "backlog out of order");
    // Everything from the first run is historical (including a prediction stored just before the
    // kill whose log line never got out). Of the second run's own predictions, those stored before
    // its first successful connection (an attempt can fail on a loaded machine) are backlog too,
    // and only those: by frame they are all historical first, then all live.
    let mut second_run = Vec::new();
    for (_, v) in consumer.json() {
        let id = v["id"].as_str().unwrap().to_string();
        let historical = v["historical"].as_bool().expect("historical is a bool");
        if stored_second.contains(&id) {
            second_run.push((v["frame_seq"].as_u64().unwrap(), historical));
        } else {
            assert!(historical, "a first-run prediction sent as live: {v}");
        }
    }
    second_run.sort();
    second_run.dedup();
    let first_live = second_run.iter().position(|(_, h)| !h);
    assert!(first_live.is_some(), "no live prediction in the second run");
    assert!(
        second_run[first_live.unwrap()..].iter().all(|(_, h)| !h),
        "a second-run prediction sent as historical after live ones: {second_run:?}"
    );
}
