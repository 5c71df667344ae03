//! `edgeinfer outbox stats|peek|export|purge` on the data dir of a stopped daemon, and a clear
//! refusal while one is running.

use crate::support::*;
use std::process::{Command, Output};
use std::time::Duration;

fn outbox(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("outbox")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn stats_peek_export_and_purge_a_stopped_daemons_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 50);
    let away = format!("mqtt://127.0.0.1:{}", free_port());
    let config = line_config(dir.path(), &readings, None, &away, "");
    run_to_end(&config);

    let stats = outbox(&config, &["stats"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v["records"], 50);
    assert_eq!(v["counters"]["appended"], 50);
    assert!(v["oldest_age_secs"].as_u64().is_some());

    let peek = outbox(&config, &["peek", "-n", "3"]);
    let lines: Vec<serde_json::Value> = text(&peek.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["prediction"]["frame_seq"], 0);
    assert_eq!(lines[0]["sensor"], "serial0");
    assert_eq!(lines[0]["priority"], "normal");

    let file = dir.path().join("backlog.jsonl");
    let export = outbox(&config, &["export", "--out", file.to_str().unwrap()]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let frames: Vec<u64> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["prediction"]["frame_seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(frames, (0..50).collect::<Vec<_>>());

    let refused = outbox(&config, &["purge"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--yes"));
    let purged = outbox(&config, &["purge", "--yes"]);
    assert!(purged.status.success());
    assert!(text(&purged.stdout).contains("purged 50 record(s)"));
    let after = outbox(&config, &["stats"]);
    let v: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["counters"]["purged"].as_u64()),
        (Some(0), Some(50))
    );
}

#[test]
fn the_outbox_of_a_running_daemon_is_refused_with_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 100_000);
    let away = format!("mqtt://127.0.0.1:{}", free_port());
    let config = line_config(dir.path(), &readings, Some(10.0), &away, "");
    let daemon = Daemon::start(&config);
    assert!(wait_until(Duration::from_secs(20), || daemon.log_contains("Running")));
    let out = outbox(&config, &["stats"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("pid {}", daemon.pid())), "{err}");
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    assert!(outbox(&config, &["stats"]).status.success());
}
