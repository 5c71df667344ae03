//! A sensor far faster than its model: with a live-source queue (keep the latest, drop the oldest)
//! capture→prediction latency stays within a few inference times, and every frame is accounted
//! for: captured = inferred + dropped.

use crate::support::*;
use std::time::{Duration, SystemTime};

fn at(p: &serde_json::Value, key: &str) -> SystemTime {
    humantime::parse_rfc3339(p[key].as_str().unwrap()).unwrap()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn latency_stays_bounded_and_drops_account_for_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let port = free_port();
    let readings = dir.path().join("fast.csv");
    let rows: String = (0..8000).map(|i| format!("{i},1,2\n")).collect();
    std::fs::write(&readings, rows).unwrap();
    let body = format!(
        r#"{model}
[[sensors]]
id = "fast"
model = "busy"
type = "line_replay"
path = "{readings}"
rate = 2000.0
queue = {{ capacity = 1, overflow = "drop_oldest" }}

[mqtt]
broker = "{broker}"
"#,
        model = raw_model_toml("busy", "models/busy.onnx", 1, "threads = 1"),
        readings = readings.display(),
        broker = broker.url(),
    );
    let config = write_config(
        dir.path(),
        "fast.toml",
        &format!("{body}{}", metrics_toml(port)),
    );
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .log_contains("reached the end of its input")),
        "{}",
        daemon.log()
    );
    // Once the worker has finished its last frame, every captured frame was inferred or dropped.
    let mut counters = SensorCounters::scrape(port, "fast");
    let accounted = wait_until(Duration::from_secs(20), || {
        counters = SensorCounters::scrape(port, "fast");
        counters.dropped + counters.inferred + counters.errors == counters.captured
    });
    assert!(accounted, "frames unaccounted for: {counters:?}");
    let SensorCounters {
        captured,
        inferred,
        dropped,
        ..
    } = counters;
    assert_eq!(captured, 8000, "{counters:?}");
    assert_eq!(counters.errors, 0, "{counters:?}");
    assert!(
        captured >= 5 * inferred,
        "the sensor was not much faster than the model: {counters:?}"
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());

    assert!(wait_until(Duration::from_secs(20), || consumer.count()
        >= inferred as usize));
    let predictions = consumer.json();
    let mut inference: Vec<f64> = predictions
        .iter()
        .map(|(_, p)| p["latency_us"].as_f64().unwrap() / 1000.0)
        .collect();
    let mut end_to_end: Vec<f64> = predictions
        .iter()
        .map(|(_, p)| {
            at(p, "inferred_at")
                .duration_since(at(p, "captured_at"))
                .unwrap()
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    inference.sort_by(f64::total_cmp);
    end_to_end.sort_by(f64::total_cmp);
    let (inf_p50, e2e_p50, e2e_p99) = (
        percentile(&inference, 0.5),
        percentile(&end_to_end, 0.5),
        percentile(&end_to_end, 0.99),
    );
    eprintln!(
        "captured {captured}, inferred {inferred}, dropped {dropped}; inference p50 {inf_p50:.1} ms; \
         capture->prediction p50 {e2e_p50:.1} ms, p99 {e2e_p99:.1} ms ({:.2} inference times)",
        e2e_p99 / inf_p50
    );
    // A frame waits for at most the inference in progress, then its own.
    assert!(
        e2e_p99 <= 4.0 * inf_p50,
        "p99 capture->prediction {e2e_p99:.1} ms vs inference p50 {inf_p50:.1} ms"
    );
}
