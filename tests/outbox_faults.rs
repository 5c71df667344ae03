//! Store-and-forward under faults, with a real mosquitto: SIGKILL at random moments, long outages
//! of every kind (packets dropped, connections refused, broker stopped) on a network namespace of
//! the test's own, a lossy and slow link, a damaged store, a full disk.

use crate::support::netns::FaultyLink;
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

/// These tests measure throughput-heavy runs; one at a time keeps them from starving each other on
/// a small machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The seq of an id `{device}-{seq}`.
fn seq_of(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

/// The highest `upto=` of the outbox's durability log lines.
fn durable_upto(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("Outbox records durable"))
        .filter_map(|l| {
            let at = l.find("upto=")? + 5;
            l[at..].split_whitespace().next()?.parse().ok()
        })
        .max()
}

/// A tiny random generator, seeded from the clock; the seed is printed for reruns.
struct Lcg(u64);
impl Lcg {
    fn seeded() -> Self {
        let seed = std::env::var("EDGEINFER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
            });
        eprintln!("seed {seed} (EDGEINFER_TEST_SEED to repeat)");
        Self(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// 30 SIGKILLs at random moments while predictions are produced and published with the default
/// batch durability. Every prediction the outbox logged as durable before a kill is delivered in
/// the end; what was stored after the last durable point of a run may be lost (that is the
/// configured window), and nothing else.
#[test]
fn sigkill_at_random_moments_loses_nothing_that_was_durable() {
    let _serial = serial();
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 20_000);
    let config = line_config(dir.path(), &readings, Some(1000.0), &broker.url(), "");
    let mut rng = Lcg::seeded();

    let mut durable: BTreeSet<String> = BTreeSet::new();
    let mut stored_total = 0usize;
    let mut lost_window = 0usize;
    for run in 0..30 {
        let mut daemon = Daemon::start(&config);
        assert!(
            wait_until(Duration::from_secs(20), || daemon.log_contains("Running")),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        daemon.kill();
        let log = daemon.log();
        let stored = daemon.stored_ids();
        let upto = durable_upto(&log);
        let (kept, lost): (Vec<String>, Vec<String>) = stored
            .iter()
            .cloned()
            .partition(|id| upto.is_some_and(|u| seq_of(id) <= u));
        eprintln!(
            "run {run}: stored {}, durable {}, after the last durable point {}",
            stored.len(),
            kept.len(),
            lost.len()
        );
        stored_total += stored.len();
        lost_window += lost.len();
        durable.extend(kept);
    }
    // A last run, stopped cleanly once everything durable has arrived.
    let daemon = Daemon::start(&config);
    let delivered = wait_until(Duration::from_secs(60), || {
        let got: BTreeSet<String> = consumer.ids().into_iter().collect();
        durable.iter().all(|id| got.contains(id))
    });
    let got: BTreeSet<String> = consumer.ids().into_iter().collect();
    let missing: Vec<&String> = durable.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        delivered,
        "{} durable predictions never arrived: {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    // Duplicates only for ids already seen, and each id always the same prediction.
    let mut by_id: HashMap<String, serde_json::Value> = HashMap::new();
    for (_, v) in consumer.json() {
        let id = v["id"].as_str().unwrap().to_string();
        if let Some(first) = by_id.get(&id) {
            assert_eq!(first["captured_at"], v["captured_at"], "{id} reused");
            assert_eq!(first["frame_seq"], v["frame_seq"], "{id} reused");
        } else {
            by_id.insert(id, v);
        }
    }
    eprintln!(
        "30 kills: {stored_total} stored, {} durable and all delivered, {lost_window} inside the flush window at a kill",
        durable.len()
    );
    assert!(
        durable.len() > 1000,
        "too little was produced to mean anything"
    );
    let stats = outbox_stats(dir.path());
    assert_eq!(
        stats.counters.dropped_oldest + stats.counters.corrupt,
        0,
        "{stats:?}"
    );
}

/// Frame sequence numbers and ids of received predictions, with arrival order and time.
struct Arrival {
    frame: u64,
    seq: u64,
    historical: bool,
    at: Instant,
}

fn arrivals(consumer: &Recorder) -> Vec<Arrival> {
    let times = consumer.arrivals.lock().unwrap().clone();
    consumer
        .json()
        .into_iter()
        .zip(times)
        .map(|((_, v), at)| Arrival {
            frame: v["frame_seq"].as_u64().unwrap(),
            seq: seq_of(v["id"].as_str().unwrap()),
            historical: v["historical"].as_bool().unwrap(),
            at,
        })
        .collect()
}

/// First arrivals only, in arrival order.
fn first_arrivals(all: Vec<Arrival>) -> Vec<Arrival> {
    let mut seen = BTreeSet::new();
    all.into_iter().filter(|a| seen.insert(a.seq)).collect()
}

/// The broker is unreachable for a period covering over 100,000 predictions: first its packets are
/// dropped, then its port refuses connections, then it is stopped. After it returns everything
/// arrives, the backlog oldest first and marked historical, while live predictions keep flowing
/// beside it.
#[test]
fn a_long_outage_of_every_kind_loses_nothing_and_live_data_flows_during_the_drain() {
    let _serial = serial();
    const ROWS: usize = 150_000;
    const RATE: f64 = 5_000.0;
    let mut link = FaultyLink::start();
    let consumer = link.consumer("edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, ROWS);
    let config = line_config(dir.path(), &readings, Some(RATE), &link.url(), "");
    // Quiet log: 5000 predictions a second.
    let daemon = Daemon::start_with_env(&config, &[("RUST_LOG", OsStr::new("edgeinfer=info"))]);
    assert!(wait_until(Duration::from_secs(20), || consumer.count() > 100));

    let phase = Duration::from_secs(7);
    link.drop_broker();
    std::thread::sleep(phase);
    link.reject_broker();
    std::thread::sleep(phase);
    link.heal();
    link.stop_broker();
    std::thread::sleep(phase);
    let received_before = consumer.count();
    link.start_broker();
    let reconnected = Instant::now();

    let all_arrived = wait_until(Duration::from_secs(180), || {
        let frames: BTreeSet<u64> = consumer
            .json()
            .iter()
            .map(|(_, v)| v["frame_seq"].as_u64().unwrap())
            .collect();
        frames.len() == ROWS
    });
    let log = daemon.log();
    let status = daemon.terminate(Duration::from_secs(10));
    let got = arrivals(&consumer);
    let frames: BTreeSet<u64> = got.iter().map(|a| a.frame).collect();
    assert!(
        all_arrived,
        "{} of {ROWS} frames arrived; first missing {:?}\n{log}",
        frames.len(),
        (0..ROWS as u64).find(|f| !frames.contains(f))
    );
    assert!(status.success());

    let first = first_arrivals(got);
    let historical: Vec<&Arrival> = first.iter().filter(|a| a.historical).collect();
    let live_during_drain: Vec<&Arrival> = first
        .iter()
        .filter(|a| !a.historical && a.at >= reconnected)
        .collect();
    let outage = historical.len();
    eprintln!(
        "outage backlog: {outage} predictions; received before the broker returned: {received_before}"
    );
    assert!(
        outage >= 100_000,
        "the outage covered only {outage} predictions"
    );
    // Oldest first within the backlog, and in order among live predictions.
    assert!(historical.windows(2).all(|w| w[0].seq < w[1].seq));
    let live: Vec<&Arrival> = first.iter().filter(|a| !a.historical).collect();
    assert!(live.windows(2).all(|w| w[0].seq < w[1].seq));
    // Live predictions were not held back until the backlog was through.
    let drain_end = historical.last().unwrap().at;
    let live_while_draining = live_during_drain
        .iter()
        .filter(|a| a.at < drain_end)
        .count();
    let drain = drain_end - reconnected;
    eprintln!(
        "backlog drained in {:.1} s ({:.0} predictions/s); {live_while_draining} live predictions arrived meanwhile",
        drain.as_secs_f64(),
        outage as f64 / drain.as_secs_f64()
    );
    assert!(
        live_while_draining > 0,
        "live predictions waited for the whole backlog"
    );
    let stats = outbox_stats(dir.path());
    assert_eq!(stats.records, 0, "{stats:?}");
    assert_eq!(
        stats.counters.dropped_oldest + stats.counters.dropped_newest + stats.counters.write_errors,
        0,
        "{stats:?}"
    );
}

/// 20% packet loss and a 256 kbit/s cap for the whole run, two sensors: nothing lost, each sensor's
/// predictions in order (live and backlog each), and a duplicate only ever repeats an id already
/// seen with the same content.
#[test]
fn a_lossy_slow_link_loses_nothing_and_keeps_order() {
    let _serial = serial();
    const ROWS: usize = 1_000;
    let mut link = FaultyLink::start();
    link.loss(20);
    link.rate_limit(256);
    let consumer = link.consumer("edgeinfer/t1/predictions/#");
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, ROWS);
    let body = format!(
        "{}{}{}\n[mqtt]\nbroker = \"{}\"\nkeep_alive_secs = 5\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n",
        vibration_model_toml("vibration", &repo("models/vibration.labels")),
        line_sensor_toml("a", "vibration", &readings, Some(50.0)),
        line_sensor_toml("b", "vibration", &readings, Some(50.0)),
        link.url()
    );
    let config = write_config(dir.path(), "edgeinfer.toml", &body);
    let started = Instant::now();
    let daemon = Daemon::start_with_env(&config, &[("RUST_LOG", OsStr::new("edgeinfer=info"))]);
    let all = wait_until(Duration::from_secs(240), || {
        let mut per: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (_, v) in consumer.json() {
            per.entry(v["sensor"].as_str().unwrap().into())
                .or_default()
                .insert(v["frame_seq"].as_u64().unwrap());
        }
        per.len() == 2 && per.values().all(|f| f.len() == ROWS)
    });
    let took = started.elapsed();
    let log = daemon.log();
    let reconnects = log.matches("Connected to broker").count();
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    assert!(all, "not everything arrived:\n{log}");

    let msgs = consumer.json();
    let mut by_id: HashMap<String, serde_json::Value> = HashMap::new();
    let mut order: HashMap<(String, bool), Vec<u64>> = HashMap::new();
    let mut duplicates = 0;
    for (_, v) in &msgs {
        let id = v["id"].as_str().unwrap().to_string();
        if let Some(first) = by_id.get(&id) {
            assert_eq!(
                (&first["sensor"], &first["frame_seq"]),
                (&v["sensor"], &v["frame_seq"]),
                "id {id} reused"
            );
            duplicates += 1;
            continue;
        }
        by_id.insert(id, v.clone());
        let lane = (
            v["sensor"].as_str().unwrap().to_string(),
            v["historical"].as_bool().unwrap(),
        );
        order
            .entry(lane)
            .or_default()
            .push(v["frame_seq"].as_u64().unwrap());
    }
    for (lane, frames) in &order {
        assert!(
            frames.windows(2).all(|w| w[0] < w[1]),
            "{lane:?} out of order: {frames:?}"
        );
    }
    eprintln!(
        "{} predictions over 20% loss at 256 kbit/s in {:.1} s; {duplicates} duplicates; {reconnects} connections",
        2 * ROWS,
        took.as_secs_f64()
    );
}

/// A data dir whose outbox was written while the broker was away, and the config that wrote it.
fn offline_outbox(dir: &Path, rows: usize) -> (std::path::PathBuf, LineConfig) {
    let readings = dir.join("readings.csv");
    write_readings(&readings, rows);
    let spec = LineConfig {
        broker: Some(format!("mqtt://127.0.0.1:{}", free_port())),
        ..LineConfig::new(dir, &readings)
    };
    let config = spec.write(&dir.join("edgeinfer.toml"));
    run_to_end(&config);
    (config, spec)
}

/// Damaged database files (truncated, scribbled on) while the daemon is stopped: it starts, moves
/// the damaged store aside, reports it, and goes on inferring and publishing.
#[test]
fn a_damaged_store_is_quarantined_and_the_daemon_carries_on() {
    let _serial = serial();
    for damage in ["truncate", "scribble"] {
        let dir = tempfile::tempdir().unwrap();
        let (config, spec) = offline_outbox(dir.path(), 300);
        let outbox = dir.path().join("state/outbox");
        let gen = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("gen-"))
            .unwrap();
        let db = gen.join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        match damage {
            "truncate" => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&db)
                    .unwrap()
                    .set_len(len / 3)
                    .unwrap();
                // sled's snapshot would otherwise let it rebuild from what is left.
                for e in std::fs::read_dir(&gen).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("snap.")
                    {
                        std::fs::write(&p, b"\0\0\0\0").unwrap();
                    }
                }
            }
            _ => std::fs::write(&db, vec![0x5Au8; len as usize]).unwrap(),
        }

        let broker = Broker::start();
        let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
        let status = Recorder::consumer(broker.port, "edgeinfer/t1/status");
        // The management connection reports the quarantine in the retained status.
        LineConfig {
            broker: Some(broker.url()),
            extra: "\n[remote]\n".into(),
            ..spec.clone()
        }
        .write(&config);
        let daemon = Daemon::start(&config);
        assert!(
            wait_until(Duration::from_secs(30), || consumer.count() >= 300),
            "{damage}: {}",
            daemon.log()
        );
        let log = daemon.log();
        assert!(daemon.terminate(Duration::from_secs(10)).success());
        let quarantined: Vec<_> = std::fs::read_dir(outbox.join("quarantine"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        eprintln!("{damage}: quarantined {quarantined:?}");
        assert_eq!(quarantined.len(), 1, "{damage}: {log}");
        assert!(log.contains("Outbox store damaged"), "{damage}: {log}");
        assert!(log.contains("quarantined=1"), "{damage}: {log}");
        assert_eq!(outbox_stats(dir.path()).counters.quarantined, 1);
        let reported = status
            .json()
            .into_iter()
            .find(|(_, v)| v["online"] == true)
            .map(|(_, v)| v["outbox"]["counters"]["quarantined"].clone());
        assert_eq!(
            reported,
            Some(serde_json::json!(1)),
            "{damage}: status {:?}",
            status.json()
        );
    }
}

/// A disk that fills up: writes fail, are logged and counted, the daemon keeps running, and once
/// space returns it stores again; everything it stored is delivered.
#[test]
fn a_full_disk_is_survived_and_storing_resumes_when_space_returns() {
    let _serial = serial();
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a tmpfs (needs root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    // Room that can be handed back later.
    let filler = mount.path().join("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 200_000);
    let away = format!("mqtt://127.0.0.1:{}", free_port());
    let config = LineConfig {
        data_dir: mount.path().join("state"),
        rate: Some(4000.0),
        broker: Some(away),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));

    let daemon = Daemon::start_with_env(&config, &[("RUST_LOG", OsStr::new("edgeinfer=info"))]);
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .log_contains("Outbox write failed")),
        "the disk never filled:\n{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || daemon
            .log_contains("Outbox writable again")),
        "{}",
        daemon.log()
    );
    // It keeps writing until the disk is full again (too full for sled's next write, which may
    // leave less than a segment free); a restart on the full disk still runs.
    let full_again = || {
        let log = daemon.log();
        log.find("Outbox writable again")
            .is_some_and(|at| log[at..].contains("Outbox write failed"))
    };
    assert!(
        wait_until(Duration::from_secs(60), full_again),
        "the disk never filled again:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    let status = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let daemon = Daemon::start_with_env(&config, &[("RUST_LOG", OsStr::new("edgeinfer=info"))]);
    assert!(
        wait_until(Duration::from_secs(30), || daemon.log_contains("Running")),
        "no start on a full disk:\n{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let restart_log = daemon.log();
    assert!(
        daemon.terminate(Duration::from_secs(20)).success(),
        "{restart_log}"
    );
    // More room, as when an operator clears the disk, so the store can be opened to look at it.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(grown.success());
    let write_failures = log.matches("Outbox write failed").count();
    eprintln!("write failures logged: {write_failures}");
    let stats = edgeinfer::outbox::Outbox::open(
        &mount.path().join("state/outbox"),
        &edgeinfer::config::OutboxConfig::default(),
    )
    .unwrap()
    .stats();
    eprintln!("{stats:?}");
    assert!(stats.counters.write_errors > 0, "{stats:?}");
    assert!(stats.records > 0);
    // A full disk is not damage: nothing was quarantined.
    assert_eq!(stats.counters.quarantined, 0, "{stats:?}");
}
