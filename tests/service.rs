//! Running under systemd: the test plays the service manager's part with its own notification
//! socket (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), and reloads the config with SIGHUP.

mod support;

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// A notification socket that records every datagram with its arrival time.
struct ServiceManager {
    socket_path: std::path::PathBuf,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl ServiceManager {
    fn start(dir: &Path) -> ServiceManager {
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
                if Arc::strong_count(&sink) == 1 {
                    return;
                }
            }
        });
        ServiceManager {
            socket_path,
            received,
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.received.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.messages()
            .iter()
            .filter(|(_, m)| m.lines().any(|l| l == needle))
            .count()
    }
}

fn config(dir: &Path, sensor: &str) -> std::path::PathBuf {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 50);
    let body = format!(
        "{}{}loop = true\n",
        vibration_model_toml("vibration", &repo("models/vibration.labels")),
        line_sensor_toml(sensor, "vibration", &readings, Some(20.0)),
    );
    write_config(dir, "edgeinfer.toml", &body)
}

#[test]
fn ready_after_start_up_pings_while_working_and_silence_when_inference_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let config = config(dir.path(), "serial0");
    let env: [(&str, &OsStr); 3] = [
        ("NOTIFY_SOCKET", manager.socket_path.as_os_str()),
        ("WATCHDOG_USEC", OsStr::new("400000")),
        ("EDGEINFER_TEST_HANG_AFTER_FRAMES", OsStr::new("40")),
    ];
    let daemon = Daemon::start_with_env(&config, &env);
    assert!(
        wait_until(Duration::from_secs(30), || manager.count("READY=1") == 1),
        "{}",
        daemon.log()
    );
    // READY only once the models are loaded and the sensors opened.
    assert!(daemon.log_contains("Model loaded") && daemon.log_contains("Running"));
    let first = manager.messages();
    assert!(first[0].1.contains("READY=1"), "{first:?}");
    // Pings at half the timeout while frames flow (20/s; the hook hangs the worker at frame 41).
    assert!(
        wait_until(Duration::from_secs(5), || manager.count("WATCHDOG=1") >= 3),
        "{:?}\n{}",
        manager.messages(),
        daemon.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log_contains("watchdog pings stopped")),
        "{}",
        daemon.log()
    );
    let pings_at_stall = manager.count("WATCHDOG=1");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        manager.count("WATCHDOG=1"),
        pings_at_stall,
        "pings went on after the worker hung: {:?}",
        manager.messages()
    );
    assert!(manager
        .messages()
        .iter()
        .any(|(_, m)| m.contains("STATUS=Stalled: vibration")));
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_the_new_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let config = config(dir.path(), "serial0");
    let daemon = Daemon::start_with_env(
        &config,
        &[("NOTIFY_SOCKET", manager.socket_path.as_os_str())],
    );
    let stored_by = |sensor: &str| {
        daemon
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("Prediction stored") && l.contains(&format!("sensor={sensor} ")))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || stored_by("serial0") >= 3),
        "{}",
        daemon.log()
    );

    // A valid change: the sensor is renamed.
    let good = std::fs::read_to_string(&config)
        .unwrap()
        .replace("id = \"serial0\"", "id = \"serial1\"");
    std::fs::write(&config, &good).unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_until(Duration::from_secs(30), || stored_by("serial1") >= 3),
        "{}",
        daemon.log()
    );
    assert!(daemon.log_contains("Configuration reloaded"));
    assert!(wait_until(Duration::from_secs(5), || manager
        .count("READY=1")
        == 2));
    assert_eq!(manager.count("RELOADING=1"), 1);

    // An invalid change: two mistakes, both reported; the daemon goes on as it was.
    let bad = good
        .replace("[device]", "[device]\ncolour = \"blue\"")
        .replace("rate = 20", "rate = -1");
    std::fs::write(&config, bad).unwrap();
    signal(daemon.pid(), "HUP");
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log_contains("keeping the current one")),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(log.contains("device.colour: unknown field"), "{log}");
    assert!(
        log.contains("sensors[0].rate: must be more than 0"),
        "{log}"
    );
    let before = stored_by("serial1");
    assert!(
        wait_until(Duration::from_secs(10), || stored_by("serial1")
            >= before + 3),
        "{}",
        daemon.log()
    );
    assert!(stored_by("serial0") > 0);
    assert_eq!(manager.count("RELOADING=1"), 1);
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
