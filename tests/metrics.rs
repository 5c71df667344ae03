//! The optional Prometheus endpoint serves live counters on loopback, and refuses other addresses.

use crate::support::*;
use std::time::Duration;

#[test]
fn metrics_are_served_live_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 20);
    let port = free_port();
    let body = format!(
        "{}{}loop = true\n{}",
        vibration_model_toml("vibration", &repo("models/vibration.labels")),
        line_sensor_toml("serial0", "vibration", &readings, Some(50.0)),
        metrics_toml(port),
    );
    let config = write_config(dir.path(), "edgeinfer.toml", &body);
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || daemon.log_contains("Running")),
        "{}",
        daemon.log()
    );
    let inferred = "edgeinfer_sensor_inferred_total{device=\"t1\",sensor=\"serial0\"}";
    let first = http_get(port, "/metrics");
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    assert!(first.contains("# TYPE edgeinfer_sensor_inferred_total counter"));
    assert!(first.contains("edgeinfer_outbox_records_total{device=\"t1\",event=\"appended\"}"));
    assert!(first.contains("edgeinfer_outbox_max_bytes{device=\"t1\"} 67108864"));
    let before = series_value(&first, inferred).unwrap_or_else(|| panic!("{first}"));
    // Live: the counter grows while the sensor runs, and matches the outbox's appends.
    assert!(wait_until(Duration::from_secs(10), || {
        series_value(&http_get(port, "/metrics"), inferred).unwrap() >= before + 10
    }));
    let later = http_get(port, "/metrics");
    assert!(
        series_value(
            &later,
            "edgeinfer_outbox_records_total{device=\"t1\",event=\"appended\"}"
        )
        .unwrap()
            >= series_value(&later, inferred).unwrap()
    );
    assert!(http_get(port, "/").starts_with("HTTP/1.1 404"));
    assert!(daemon.terminate(Duration::from_secs(10)).success());

    // Only loopback: the endpoint has no authentication.
    let open = write_config(
        dir.path(),
        "open.toml",
        &body.replace("127.0.0.1:", "0.0.0.0:"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("check-config")
        .arg(&open)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("metrics.listen: must be a loopback address"),
        "{stdout}"
    );
}
