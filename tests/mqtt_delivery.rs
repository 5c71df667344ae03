//! Predictions reach a real broker: every frame exactly once and in order, and everything made while
//! the broker was away arrives afterwards, oldest first.

use crate::support::*;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const FIELDS: &[&str] = &[
    "id",
    "device",
    "sensor",
    "model",
    "model_version",
    "frame_seq",
    "captured_at",
    "inferred_at",
    "latency_us",
    "historical",
    "result",
];

fn seq_of(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

#[test]
fn every_frame_is_published_exactly_once_in_order_with_the_documented_schema() {
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();

    // Images: the demo's 12 plus one corrupt file, which is skipped without losing the others.
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for e in std::fs::read_dir(repo("config/demo-data/images")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), images.join(e.file_name())).unwrap();
    }
    std::fs::write(
        images.join("005b.jpg"),
        b"\xff\xd8\xff\xe0 definitely not a jpeg",
    )
    .unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 40);
    let labels = repo("models/colour.labels");
    let config = LineConfig {
        broker: Some(broker.url()),
        extra: colour_replay_toml(
            "cam0",
            &format!(
                "preprocess = {{ type = \"image\", resize = [85, 64], crop = [64, 64] }}\n\
                 postprocess = {{ type = \"classify\", top_k = 1, labels = \"{}\" }}",
                labels.display()
            ),
            &images,
        ),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));

    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || consumer.count() >= 52),
        "got {} of 52 predictions; log:\n{}",
        consumer.count(),
        daemon.log()
    );
    // Nothing more arrives: exactly once.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        daemon.log_contains("Bad input skipped"),
        "the corrupt image was not reported"
    );
    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    // Everything delivered was acknowledged and deleted: a restart would send nothing again.
    let stats = outbox_stats(dir.path());
    assert_eq!((stats.records, stats.counters.acked), (0, 52), "{stats:?}");

    let msgs = consumer.json();
    assert_eq!(msgs.len(), 52);
    let mut per_sensor: HashMap<String, Vec<u64>> = HashMap::new();
    let mut ids = BTreeSet::new();
    let mut last_seq = None;
    for (topic, v) in &msgs {
        for f in FIELDS {
            assert!(v.get(f).is_some(), "field {f} missing in {v}");
        }
        let sensor = v["sensor"].as_str().unwrap();
        assert_eq!(topic, &format!("edgeinfer/t1/predictions/{sensor}"));
        assert_eq!(v["device"], "t1");
        assert_eq!(v["historical"], false);
        assert_eq!(v["model_version"].as_str().unwrap().len(), 12);
        assert!(v["latency_us"].as_u64().is_some());
        assert!(humantime::parse_rfc3339(v["captured_at"].as_str().unwrap()).is_ok());
        assert!(humantime::parse_rfc3339(v["inferred_at"].as_str().unwrap()).is_ok());
        let top = v["result"]["top"].as_array().expect("classifier result");
        assert!(top[0]["score"].as_f64().unwrap() > 0.0);
        let id = v["id"].as_str().unwrap();
        assert!(ids.insert(id.to_string()), "duplicate id {id}");
        // One connection, QoS 1, oldest first: ids arrive in increasing order.
        let seq = seq_of(id);
        assert!(last_seq < Some(seq), "{id} arrived after {last_seq:?}");
        last_seq = Some(seq);
        per_sensor
            .entry(sensor.to_string())
            .or_default()
            .push(v["frame_seq"].as_u64().unwrap());
    }
    assert_eq!(per_sensor["serial0"], (0..40).collect::<Vec<_>>());
    assert_eq!(per_sensor["cam0"], (0..12).collect::<Vec<_>>());
    // The demo images cycle through the colours; the model gets them right.
    let cam: Vec<&str> = msgs
        .iter()
        .filter(|(_, v)| v["sensor"] == "cam0")
        .map(|(_, v)| v["result"]["top"][0]["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        &cam[..8],
        &["red", "green", "blue", "yellow", "cyan", "magenta", "white", "black"]
    );
}

#[test]
fn predictions_made_while_the_broker_is_down_arrive_afterwards_oldest_first() {
    let mut broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    const N: usize = 200;
    write_readings(&readings, N);
    let config = line_config(dir.path(), &readings, Some(40.0), &broker.url(), "");
    let daemon = Daemon::start(&config);

    assert!(
        wait_until(Duration::from_secs(20), || consumer.count() >= 30),
        "{}",
        daemon.log()
    );
    broker.stop();
    let stored_before = daemon.stored_ids().len();
    std::thread::sleep(Duration::from_millis(1500));
    let while_down: Vec<String> = daemon.stored_ids()[stored_before..].to_vec();
    let made_while_down = while_down.len();
    assert!(
        made_while_down >= 20,
        "only {made_while_down} predictions while the broker was down"
    );
    broker.restart();

    let all_delivered = wait_until(Duration::from_secs(40), || {
        consumer.ids().into_iter().collect::<BTreeSet<_>>().len() >= N
    });
    let log = daemon.log();
    let status = daemon.terminate(Duration::from_secs(10));
    let got: BTreeSet<String> = consumer.ids().into_iter().collect();
    assert!(
        all_delivered,
        "got {} unique of {N}; outbox after stop: {:?}\nmissing: {:?}\n{log}",
        got.len(),
        outbox_stats(dir.path()),
        (0..N)
            .map(|i| format!("t1-{i}"))
            .filter(|id| !got.contains(id))
            .collect::<Vec<_>>()
    );
    assert!(status.success());
    assert!(log.contains("Connection to broker lost"), "{log}");

    let ids = consumer.ids();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), N, "none lost, none extra");
    // By first arrival, the backlog came oldest first, marked historical, and what was made
    // while the broker was down is all in it; live predictions, which may be interleaved with
    // the backlog so as not to wait behind it, came in order too.
    let mut seen = BTreeSet::new();
    let firsts: Vec<(u64, bool)> = consumer
        .json()
        .iter()
        .filter(|(_, v)| seen.insert(v["id"].as_str().unwrap().to_string()))
        .map(|(_, v)| {
            (
                seq_of(v["id"].as_str().unwrap()),
                v["historical"].as_bool().unwrap(),
            )
        })
        .collect();
    for historical in [true, false] {
        let lane: Vec<u64> = firsts
            .iter()
            .filter(|(_, h)| *h == historical)
            .map(|(seq, _)| *seq)
            .collect();
        assert!(
            lane.windows(2).all(|w| w[0] < w[1]),
            "out of order (historical: {historical}): {lane:?}\nall: {firsts:?}"
        );
    }
    for id in &while_down {
        let seq = seq_of(id);
        assert!(
            firsts.contains(&(seq, true)),
            "{id}, made while the broker was down, did not arrive first as historical: {firsts:?}"
        );
    }
    let frames: BTreeSet<u64> = consumer
        .json()
        .iter()
        .map(|(_, v)| v["frame_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, (0..N as u64).collect());
}

#[test]
fn a_prediction_too_large_to_publish_is_counted_and_does_not_block_the_others() {
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 40);
    // Labels this long make every prediction of "serial1" bigger than the packet limit.
    let long_labels = dir.path().join("long.labels");
    std::fs::write(
        &long_labels,
        format!("normal{0}\nalert{0}\n", "x".repeat(1500)),
    )
    .unwrap();
    let metrics = free_port();
    let config = LineConfig {
        broker: Some(broker.url()),
        mqtt_extra: "max_packet_bytes = 1024\n".into(),
        extra: format!(
            "{}{}{}",
            vibration_model_toml("verbose", &long_labels),
            line_sensor_toml("serial1", "verbose", &readings, None),
            metrics_toml(metrics)
        ),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));

    let daemon = Daemon::start(&config);
    let undeliverable = "edgeinfer_outbox_records_total{device=\"t1\",event=\"undeliverable\"}";
    assert!(
        wait_until(Duration::from_secs(30), || consumer.count() >= 40
            && metric(metrics, undeliverable) >= Some(40)),
        "{} delivered; log:\n{}",
        consumer.count(),
        daemon.log()
    );
    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success());
    let msgs = consumer.json();
    assert_eq!(msgs.len(), 40);
    assert!(msgs.iter().all(|(_, v)| v["sensor"] == "serial0"));

    let stats = outbox_stats(dir.path());
    assert_eq!(stats.counters.undeliverable, 40, "{stats:?}");
    assert_eq!(stats.records, 0, "{stats:?}");
}
