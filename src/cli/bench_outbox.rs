//! `edgeinfer bench-outbox`: how fast predictions go into the outbox under each durability setting
//! (against plain file appends with the same fsync pattern, measured in the same run), how fast a
//! backlog drains to a broker with and without batching, and how the outbox's disk use and the
//! process's memory behave when millions of records churn through a full cap.

use crate::config::{Durability, MqttConfig, OutboxConfig, WhenFull};
use crate::mqtt::Uplink;
use crate::outbox::{Cursor, Outbox};
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Arguments of `edgeinfer bench-outbox`.
#[derive(Args)]
pub struct BenchOutboxArgs {
    /// Scratch directory, on the filesystem to measure (it is emptied first and removed after).
    #[arg(long, default_value = "bench-outbox.tmp")]
    dir: PathBuf,
    /// Records for the append measurements.
    #[arg(long, default_value_t = 20_000)]
    records: u64,
    /// Records for `every_record` (one fsync each: slow on SD cards).
    #[arg(long, default_value_t = 2_000)]
    every_record_records: u64,
    /// Bytes of each record's JSON (a classifier prediction is about 350).
    #[arg(long, default_value_t = 350)]
    record_bytes: usize,
    /// A broker to measure the drain rate against (e.g. mqtt://127.0.0.1:1883); skipped without.
    #[arg(long)]
    broker: Option<String>,
    /// Backlog records for the drain measurement.
    #[arg(long, default_value_t = 50_000)]
    drain_records: u64,
    /// Records through a full outbox for the churn measurement (0: skip).
    #[arg(long, default_value_t = 0)]
    churn: u64,
    /// Cap of the outbox for the churn measurement.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    churn_cap: u64,
    /// `rotate_bytes` for the churn measurement (default: the outbox default for the cap).
    #[arg(long)]
    churn_rotate_bytes: Option<u64>,
}

pub(super) fn run(args: &BenchOutboxArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-outbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchOutboxArgs) -> anyhow::Result<()> {
    let record = sample_record(args.record_bytes);
    println!(
        "outbox bench in {} ({}-byte records)",
        args.dir.display(),
        record.len()
    );
    println!("\nappend rate (records/s), against plain file appends with the same fsync pattern:");
    println!(
        "{:<14} {:>9} {:>12} {:>12} {:>7}",
        "durability", "records", "outbox/s", "file/s", "ratio"
    );
    for (durability, n) in [
        (Durability::Batch, args.records),
        (Durability::EveryRecord, args.every_record_records),
    ] {
        let outbox = append_rate(&args.dir, durability, n, &record)?;
        let file = file_rate(&args.dir, durability, n, &record)?;
        println!(
            "{:<14} {:>9} {:>12.0} {:>12.0} {:>7.2}",
            format!("{durability:?}"),
            n,
            outbox,
            file,
            outbox / file
        );
    }
    if let Some(broker) = &args.broker {
        println!(
            "\ndrain of a {}-record backlog to {broker}:",
            args.drain_records
        );
        println!(
            "{:<14} {:>12} {:>10}",
            "batch_records", "records/s", "seconds"
        );
        let mut single = None;
        for batch in [1usize, 16, 64] {
            let (rate, secs) = drain_rate(&args.dir, broker, batch, args.drain_records, &record)?;
            let ratio = single.map_or(String::new(), |s: f64| format!("  ×{:.1}", rate / s));
            single.get_or_insert(rate);
            println!("{batch:<14} {rate:>12.0} {secs:>10.2}{ratio}");
        }
    }
    if args.churn > 0 {
        churn(&args.dir, args, &record)?;
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}

/// A prediction-like JSON object of about `bytes` bytes.
fn sample_record(bytes: usize) -> Vec<u8> {
    let base = r#"{"id":"bench-0","device":"bench","sensor":"s","model":"m","model_version":"0123456789ab","frame_seq":0,"captured_at":"2026-01-01T00:00:00.000000Z","inferred_at":"2026-01-01T00:00:00.001000Z","latency_us":100,"historical":false,"result":{"top":[{"label":"a","score":0.9}]},"pad":""}"#;
    let pad = bytes.saturating_sub(base.len());
    base.replace(r#""pad":"""#, &format!(r#""pad":"{}""#, "x".repeat(pad)))
        .into_bytes()
}

fn fresh(dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn config(durability: Durability, max_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        durability,
        max_bytes,
        ..OutboxConfig::default()
    }
}

/// Records per second into the outbox, including the final flush.
fn append_rate(dir: &Path, durability: Durability, n: u64, record: &[u8]) -> anyhow::Result<f64> {
    fresh(dir)?;
    let outbox = Outbox::open(&dir.join("outbox"), &config(durability, 1 << 40))?;
    let started = Instant::now();
    for _ in 0..n {
        outbox.append("s", |_| record.to_vec())?;
    }
    outbox.flush()?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Records per second appended to a plain file: fsync per record, or every `flush_interval_ms`.
fn file_rate(dir: &Path, durability: Durability, n: u64, record: &[u8]) -> anyhow::Result<f64> {
    fresh(dir)?;
    let mut f = std::fs::File::create(dir.join("plain.log"))?;
    let interval = Duration::from_millis(OutboxConfig::default().flush_interval_ms);
    let started = Instant::now();
    let mut last_sync = Instant::now();
    for _ in 0..n {
        f.write_all(record)?;
        f.write_all(b"\n")?;
        if durability == Durability::EveryRecord || last_sync.elapsed() >= interval {
            f.sync_data()?;
            last_sync = Instant::now();
        }
    }
    f.sync_data()?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Fills an outbox, then times the uplink until it is empty; (records/s, seconds).
fn drain_rate(
    dir: &Path,
    broker: &str,
    batch: usize,
    n: u64,
    record: &[u8],
) -> anyhow::Result<(f64, f64)> {
    fresh(dir)?;
    let outbox = Arc::new(Outbox::open(
        &dir.join("outbox"),
        &config(Durability::Batch, 1 << 40),
    )?);
    for _ in 0..n {
        outbox.append("s", |_| record.to_vec())?;
    }
    outbox.flush()?;
    let mqtt: MqttConfig = toml::from_str(&format!(
        "broker = \"{broker}\"\nclient_id = \"edgeinfer-bench-{}\"\nbatch_records = {batch}\nmax_packet_bytes = 1048576\n",
        std::process::id()
    ))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stop = CancellationToken::new();
    let uplink = Uplink::new(mqtt, "bench".into(), Arc::clone(&outbox), stop.clone())
        .map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let drained = runtime.block_on(async {
        let task = tokio::spawn(uplink.run());
        let deadline = started + Duration::from_secs(600);
        while outbox.records() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        stop.cancel();
        let _ = task.await;
        secs
    });
    if outbox.records() > 0 {
        bail!("the backlog did not drain in 600 s (is the broker at {broker} up?)");
    }
    Ok((n as f64 / drained, drained))
}

/// Pushes `n` records through an outbox at its cap, half of the time as a full outbox dropping
/// its oldest, half as a connected one whose records are acknowledged a little later; prints the
/// directory size and RSS along the way.
fn churn(dir: &Path, args: &BenchOutboxArgs, record: &[u8]) -> anyhow::Result<()> {
    let (n, cap) = (args.churn, args.churn_cap);
    fresh(dir)?;
    let path = dir.join("outbox");
    let config = OutboxConfig {
        max_bytes: cap,
        when_full: WhenFull::DropOldest,
        rotate_bytes: args.churn_rotate_bytes,
        ..OutboxConfig::default()
    };
    let outbox = Outbox::open(&path, &config)?;
    println!(
        "\nchurn: {n} records through a {:.0} MiB cap, generations of {:.0} MiB (first half: full, dropping oldest; second half: connected, draining to 1000 behind)",
        cap as f64 / 1048576.0,
        config.rotate_bytes() as f64 / 1048576.0
    );
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>6} {:>9}",
        "records", "stored", "disk MiB", "disk/cap", "gens", "RSS MiB"
    );
    let every = (n / 20).max(1);
    let mut cursor = Cursor::all();
    let (mut max_disk, mut min_rss, mut max_rss) = (0u64, u64::MAX, 0u64);
    let started = Instant::now();
    for i in 1..=n {
        outbox.append("s", |_| record.to_vec())?;
        if i > n / 2 {
            // Two acks per record until the backlog is down to 1000, then one.
            let acks = if outbox.records() > 1000 { 2 } else { 1 };
            let keys: Vec<_> = outbox
                .pending(&mut cursor, acks)?
                .into_iter()
                .map(|r| r.key)
                .collect();
            outbox.ack(&keys)?;
        }
        if i % every == 0 {
            let s = outbox.stats();
            let disk = crate::outbox::dir_bytes(&path);
            let rss = crate::manage::system::rss_bytes().unwrap_or(0) >> 20;
            max_disk = max_disk.max(disk);
            if i > n / 10 {
                min_rss = min_rss.min(rss);
            }
            max_rss = max_rss.max(rss);
            println!(
                "{i:>10} {:>10} {:>12.1} {:>10.2} {:>6} {:>9}",
                s.records,
                disk as f64 / 1048576.0,
                disk as f64 / cap as f64,
                s.generations,
                rss
            );
        }
    }
    println!(
        "largest directory {:.2}× the cap; RSS {min_rss}–{max_rss} MiB after the first 10%; {:.0} records/s",
        max_disk as f64 / cap as f64,
        n as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
