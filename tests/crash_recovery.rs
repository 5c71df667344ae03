//! SIGKILL at any moment loses nothing that reached the outbox: after a restart every stored
//! prediction is delivered; duplicates only for messages that were in flight, identifiable by id.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use support::*;

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

#[test]
fn sigkill_while_publishing_then_restart_delivers_every_stored_prediction() {
    let broker = Broker::start();
    let consumer = Consumer::start(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 400);
    let config = line_config(dir.path(), &readings, Some(200.0), &broker.url(), "");

    let first = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(20), || first.stored_ids().len() >= 100),
        "{}",
        first.log()
    );
    let mut first = first;
    first.kill();
    let stored_first = first.stored_ids();

    // The restart replays the file again (new ids) and must also send what the first run left behind.
    let second = Daemon::start(&config);
    let delivered = wait_until(Duration::from_secs(30), || {
        let got: BTreeSet<String> = consumer.ids().into_iter().collect();
        stored_first.iter().all(|id| got.contains(id))
    });
    let log = second.log();
    let status = second.terminate(Duration::from_secs(10));
    assert!(
        delivered,
        "stored before the kill but not delivered after restart:\n{log}"
    );
    assert!(status.success());
    check_delivery(&stored_first, &consumer.ids());
}

#[test]
fn sigkill_while_the_broker_is_down_then_restart_delivers_the_whole_backlog() {
    let mut broker = Broker::start();
    let consumer = Consumer::start(broker.port, "edgeinfer/t1/predictions/#");
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 150);
    let config = line_config(dir.path(), &readings, Some(300.0), &broker.url(), "");

    let first = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(20), || first.stored_ids().len() >= 80),
        "{}",
        first.log()
    );
    let mut first = first;
    first.kill();
    let stored_first = first.stored_ids();
    assert!(consumer.count() == 0);

    broker.restart();
    let second = Daemon::start(&config);
    let delivered = wait_until(Duration::from_secs(30), || {
        let got: BTreeSet<String> = consumer.ids().into_iter().collect();
        stored_first.iter().all(|id| got.contains(id))
    });
    let log = second.log();
    let status = second.terminate(Duration::from_secs(10));
    assert!(delivered, "backlog not delivered:\n{log}");
    assert!(status.success());
    check_delivery(&stored_first, &consumer.ids());
    // The backlog went out oldest first, ahead of the second run's own predictions.
    let ids = consumer.ids();
    let pos: HashMap<&String, usize> = ids.iter().enumerate().map(|(i, id)| (id, i)).collect();
    let order: Vec<usize> = stored_first.iter().map(|id| pos[id]).collect();
    let sorted = {
        let mut s = order.clone();
        s.sort();
        s
    };
    assert_eq!(order, sorted, "backlog out of order");
}
