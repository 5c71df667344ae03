//! Running under systemd, as the binary: the test plays the service manager's part with its own
//! notification socket (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), and reloads the config with SIGHUP.

use crate::support::service_manager::ServiceManager;
use crate::support::*;
use std::ffi::OsStr;
use std::time::Duration;

#[test]
fn ready_after_start_up_and_pings_while_working() {
    // What stops the pings (a hung worker) is tested in-process: tests/daemon_in_process.rs.
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let config = looping_line_config(dir.path(), "serial0", "");
    let env: [(&str, &OsStr); 2] = [
        ("NOTIFY_SOCKET", manager.socket_path.as_os_str()),
        ("WATCHDOG_USEC", OsStr::new("400000")),
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
    // Pings at half the timeout while frames flow.
    assert!(
        wait_until(Duration::from_secs(5), || manager.count("WATCHDOG=1") >= 3),
        "{:?}\n{}",
        manager.messages(),
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    assert!(
        wait_until(Duration::from_secs(2), || manager.count("STOPPING=1") == 1),
        "{:?}",
        manager.messages()
    );
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_the_new_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let manager = ServiceManager::start(dir.path());
    let spec = looping_line(dir.path());
    let config = spec.write(&dir.path().join("edgeinfer.toml"));
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
    let good = LineConfig {
        sensor: "serial1".into(),
        ..spec
    };
    good.write(&config);
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
    let bad = LineConfig {
        device_extra: "colour = \"blue\"\n".into(),
        rate: Some(-1.0),
        ..good
    };
    bad.write(&config);
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
