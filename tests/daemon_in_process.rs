//! The daemon in-process, through its own API: built, started, observed through its outbox and
//! counters, stopped; reloaded on a new config file; and with a fault injected into a worker
//! (a frame that never finishes), which the systemd watchdog must notice.
//!
//! Time is not paused: sensors and workers run on OS threads, which tokio's clock does not reach.

use crate::support::service_manager::ServiceManager;
use crate::support::*;
use edgeinfer::app;
use edgeinfer::config::Config;
use edgeinfer::daemon::{Daemon, Options, StartError};
use edgeinfer::outbox::Outbox;
use edgeinfer::pipeline::FrameHook;
use edgeinfer::service::Notifier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Stored predictions per sensor, read from the open outbox.
fn stored_by(outbox: &Outbox, sensor: &str) -> usize {
    let mut n = 0;
    outbox
        .for_each_record(|r| {
            n += usize::from(r.sensor == sensor);
            true
        })
        .unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_starts_and_stops_with_every_prediction_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&looping_line_config(dir.path(), "serial0", "")).unwrap();
    let daemon = Daemon::build(config.clone(), Options::default())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let running = daemon.start(&shutdown).unwrap();
    let outbox = Arc::clone(running.outbox());
    assert!(
        eventually(Duration::from_secs(30), || stored_by(&outbox, "serial0")
            >= 10)
        .await
    );
    let (id, stats) = &running.sensor_stats()[0];
    assert_eq!(&**id, "serial0");
    let stats = Arc::clone(stats);
    running.stop().await;
    drop(outbox);

    // Stopped: every frame inferred is a record, and the outbox is free to open again.
    let totals = stats.snapshot();
    assert!(totals.inferred >= 10, "{totals:?}");
    assert_eq!(totals.errors, 0, "{totals:?}");
    let reopened = Outbox::open(&config.outbox_dir(), &config.outbox).unwrap();
    assert_eq!(reopened.records(), totals.inferred);
    assert_eq!(stored_by(&reopened, "serial0") as u64, totals.inferred);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_port_in_use_fails_the_build_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let path = looping_line_config(dir.path(), "serial0", &metrics_toml(port));
    let config = Config::load(&path).unwrap();
    match Daemon::build(config.clone(), Options::default()).await {
        Err(StartError::Metrics { addr, .. }) => assert_eq!(addr.port(), port),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("built with port {port} taken"),
    }
    // Nothing was left holding the outbox.
    assert_eq!(
        Outbox::open(&config.outbox_dir(), &config.outbox)
            .unwrap()
            .records(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_replaces_the_daemon_and_an_invalid_config_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let spec = looping_line(dir.path());
    let path = spec.write(&dir.path().join("edgeinfer.toml"));
    let config = Config::load(&path).unwrap();
    let (outbox_dir, outbox_config) = (config.outbox_dir(), config.outbox.clone());
    let notifier = Notifier::to_socket(manager.socket_path.clone(), None).unwrap();
    let options = Options {
        notifier: Some(Arc::new(notifier)),
        ..Options::default()
    };
    let (shutdown, reload) = (
        CancellationToken::new(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let served = tokio::spawn({
        let (path, shutdown, reload) = (path.clone(), shutdown.clone(), Arc::clone(&reload));
        async move { app::serve(&path, config, shutdown, options, reload).await }
    });
    assert!(eventually(Duration::from_secs(30), || manager.count("READY=1") == 1).await);

    // A valid change: the sensor is renamed; the new daemon runs on it.
    let good = LineConfig {
        sensor: "serial1".into(),
        ..spec
    };
    good.write(&path);
    reload.notify_one();
    assert!(eventually(Duration::from_secs(30), || manager.count("READY=1") == 2).await);
    assert_eq!(manager.count("RELOADING=1"), 1);

    // An invalid change: reported, and the daemon goes on as it was (no new start).
    LineConfig {
        rate: Some(-1.0),
        ..good
    }
    .write(&path);
    reload.notify_one();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(manager.count("RELOADING=1"), 1);
    assert_eq!(manager.count("READY=1"), 2);
    assert!(!served.is_finished());

    shutdown.cancel();
    served.await.unwrap().unwrap();
    let outbox = Outbox::open(&outbox_dir, &outbox_config).unwrap();
    assert!(stored_by(&outbox, "serial0") > 0);
    assert!(stored_by(&outbox, "serial1") > 0);
}

/// A frame hook that hangs the worker on frame `at` until released, as a deadlocked model run
/// would.
struct Hang {
    at: u64,
    hung: AtomicBool,
    released: AtomicBool,
}

impl Hang {
    fn hook(self: &Arc<Self>) -> FrameHook {
        let hang = Arc::clone(self);
        Arc::new(move |_model: &str, frame: u64| {
            if frame == hang.at {
                hang.hung.store(true, Ordering::SeqCst);
                while !hang.released.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_stops_pinging_while_a_worker_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let config = Config::load(&looping_line_config(dir.path(), "serial0", "")).unwrap();
    let notifier = Notifier::to_socket(
        manager.socket_path.clone(),
        Some(Duration::from_millis(400)),
    )
    .unwrap();
    let hang = Arc::new(Hang {
        at: 40,
        hung: AtomicBool::new(false),
        released: AtomicBool::new(false),
    });
    let options = Options {
        notifier: Some(Arc::new(notifier)),
        frame_hook: Some(hang.hook()),
        ..Options::default()
    };
    let shutdown = CancellationToken::new();
    let running = Daemon::build(config, options)
        .await
        .unwrap()
        .start(&shutdown)
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || manager.count("READY=1") == 1).await);
    // Pings at half the timeout while frames flow (20/s; the hook hangs the worker at frame 40).
    assert!(
        eventually(Duration::from_secs(5), || manager.count("WATCHDOG=1") >= 3).await,
        "{:?}",
        manager.messages()
    );
    assert!(eventually(Duration::from_secs(10), || hang.hung.load(Ordering::SeqCst)).await);
    assert!(
        eventually(Duration::from_secs(5), || manager
            .messages()
            .iter()
            .any(|(_, m)| m.contains("STATUS=Stalled: vibration")))
        .await,
        "{:?}",
        manager.messages()
    );
    let pings_at_stall = manager.count("WATCHDOG=1");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        manager.count("WATCHDOG=1"),
        pings_at_stall,
        "pings went on while the worker hung: {:?}",
        manager.messages()
    );

    // Released, the worker goes on and the pings come back; then a clean stop.
    hang.released.store(true, Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(5), || manager.count("WATCHDOG=1")
            > pings_at_stall)
        .await,
        "{:?}",
        manager.messages()
    );
    running.stop().await;
    assert_eq!(manager.count("STOPPING=1"), 1);
}
