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
    /// Pad records with random characters instead of making them like predictions: the worst
    /// case for the outbox's compression.
    #[arg(long)]
    incompressible: bool,
    /// Store without compression (`compression = false`).
    #[arg(long)]
    no_compression: bool,
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
    /// `cache_bytes` for the churn measurement (default: the outbox default).
    #[arg(long)]
    churn_cache_bytes: Option<u64>,
    /// Records per second for the churn measurement, paced like a sensor (0: as fast as
    /// possible).
    #[arg(long, default_value_t = 0)]
    churn_rate: u64,
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
    NO_COMPRESSION.store(args.no_compression, std::sync::atomic::Ordering::Relaxed);
    let records = sample_records(args.record_bytes, args.incompressible);
    let record = &records[..];
    let mean = records.iter().map(Vec::len).sum::<usize>() / records.len();
    println!(
        "outbox bench in {} ({mean}-byte records{})",
        args.dir.display(),
        if args.incompressible {
            ", random padding"
        } else {
            ""
        }
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
        let (outbox, file) = append_rates(&args.dir, durability, n, record)?;
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
            let (rate, secs) = drain_rate(&args.dir, broker, batch, args.drain_records, record)?;
            let ratio = single.map_or(String::new(), |s: f64| format!("  ×{:.1}", rate / s));
            single.get_or_insert(rate);
            println!("{batch:<14} {rate:>12.0} {secs:>10.2}{ratio}");
        }
    }
    if args.churn > 0 {
        churn(&args.dir, args, record)?;
    }
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}

/// Distinct records the benches cycle through.
const POOL: usize = 4096;

/// Prediction-like JSON objects of about `bytes` bytes: a classifier's top labels with scores,
/// timestamps, latency and ids that differ from record to record as real ones do. With
/// `incompressible`, padded with random characters to `bytes` instead.
fn sample_records(bytes: usize, incompressible: bool) -> Vec<Vec<u8>> {
    const LABELS: [&str; 16] = [
        "tabby cat",
        "tiger cat",
        "Egyptian cat",
        "golden retriever",
        "Labrador retriever",
        "beagle",
        "pickup truck",
        "minivan",
        "sports car",
        "mountain bike",
        "traffic light",
        "street sign",
        "park bench",
        "shopping cart",
        "forklift",
        "wheelbarrow",
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    (0..POOL as u64)
        .map(|i| {
            let at = 1_767_225_600_000_000 + i * 100_000 + next() % 1000;
            let latency = 8_000 + next() % 7_000;
            let mut json = format!(
                r#"{{"id":"bench-{i}","device":"bench","sensor":"cam0","model":"mobilenet_v2","model_version":"3f2a9c1e0b7d","frame_seq":{i},"captured_at":"{}","inferred_at":"{}","latency_us":{latency},"historical":false,"result":{{"top":["#,
                timestamp(at),
                timestamp(at + latency),
            );
            if incompressible {
                json.push_str("]},\"pad\":\"");
                while json.len() + 2 < bytes {
                    // Printable ASCII except the quote and the backslash.
                    let c = (0x23 + next() % 0x39) as u8;
                    json.push(if c == b'\\' { '!' } else { c as char });
                }
                json.push_str("\"}");
            } else {
                let mut first = true;
                while json.len() + 4 < bytes || first {
                    if !first {
                        json.push(',');
                    }
                    first = false;
                    let label = LABELS[(next() % LABELS.len() as u64) as usize];
                    let score = next() % 10_000;
                    json.push_str(&format!(r#"{{"label":"{label}","score":0.{score:04}}}"#));
                }
                json.push_str("]}}");
            }
            json.into_bytes()
        })
        .collect()
}

/// RFC 3339 UTC time of `us` microseconds since the epoch.
fn timestamp(us: u64) -> String {
    let (secs, us) = (us / 1_000_000, us % 1_000_000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    format!(
        "2026-01-{:02}T{:02}:{:02}:{:02}.{us:06}Z",
        1 + days % 28,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn fresh(dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn config(durability: Durability, max_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        durability,
        max_bytes,
        compression: !NO_COMPRESSION.load(std::sync::atomic::Ordering::Relaxed),
        ..OutboxConfig::default()
    }
}

/// `--no-compression`, for every outbox the bench opens.
static NO_COMPRESSION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records per second into the outbox, including the final flush, and appended to a plain file
/// with the same fsync pattern: fsync per record, or every `flush_interval_ms`.
fn append_rates(
    dir: &Path,
    durability: Durability,
    n: u64,
    records: &[Vec<u8>],
) -> anyhow::Result<(f64, f64)> {
    fresh(dir)?;
    let outbox = Outbox::open(&dir.join("outbox"), &config(durability, 1 << 40))?;
    let started = Instant::now();
    for i in 0..n {
        outbox.append("s", |_| records[i as usize % POOL].clone())?;
    }
    outbox.flush()?;
    let into_outbox = n as f64 / started.elapsed().as_secs_f64();
    drop(outbox);

    fresh(dir)?;
    let mut f = std::fs::File::create(dir.join("plain.log"))?;
    let interval = Duration::from_millis(OutboxConfig::default().flush_interval_ms);
    let started = Instant::now();
    let mut last_sync = Instant::now();
    for i in 0..n {
        f.write_all(&records[i as usize % POOL])?;
        f.write_all(b"\n")?;
        if durability == Durability::EveryRecord || last_sync.elapsed() >= interval {
            f.sync_data()?;
            last_sync = Instant::now();
        }
    }
    f.sync_data()?;
    Ok((into_outbox, n as f64 / started.elapsed().as_secs_f64()))
}

/// Fills an outbox, then times the uplink until it is empty; (records/s, seconds).
fn drain_rate(
    dir: &Path,
    broker: &str,
    batch: usize,
    n: u64,
    records: &[Vec<u8>],
) -> anyhow::Result<(f64, f64)> {
    fresh(dir)?;
    let outbox = Arc::new(Outbox::open(
        &dir.join("outbox"),
        &config(Durability::Batch, 1 << 40),
    )?);
    for i in 0..n {
        outbox.append("s", |_| records[i as usize % POOL].clone())?;
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
fn churn(dir: &Path, args: &BenchOutboxArgs, records: &[Vec<u8>]) -> anyhow::Result<()> {
    let (n, cap) = (args.churn, args.churn_cap);
    fresh(dir)?;
    let path = dir.join("outbox");
    let config = OutboxConfig {
        when_full: WhenFull::DropOldest,
        rotate_bytes: args.churn_rotate_bytes,
        cache_bytes: args
            .churn_cache_bytes
            .unwrap_or(OutboxConfig::default().cache_bytes),
        ..config(Durability::Batch, cap)
    };
    let outbox = Outbox::open(&path, &config)?;
    println!(
        "\nchurn: {n} records through a {:.0} MiB cap, generations of {:.0} MiB, {} (first half: full, dropping oldest; second half: connected, draining to 1000 behind)",
        cap as f64 / 1048576.0,
        config.rotate_bytes() as f64 / 1048576.0,
        if args.churn_rate > 0 {
            format!("{} records/s", args.churn_rate)
        } else {
            "as fast as possible".to_string()
        }
    );
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>6} {:>9} {:>10}",
        "records", "stored", "disk MiB", "disk/cap", "gens", "RSS MiB", "heap MiB"
    );
    let every = (n / 20).max(1);
    let mut cursor = Cursor::all();
    let (mut max_disk, mut min_rss, mut max_rss) = (0u64, u64::MAX, 0u64);
    // RSS once the backlog has drained (the last 40%).
    let (mut min_drained, mut max_drained) = (u64::MAX, 0u64);
    let started = Instant::now();
    for i in 1..=n {
        if args.churn_rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / args.churn_rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        outbox.append("s", |_| records[i as usize % POOL].clone())?;
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
            if i > n / 10 * 6 {
                min_drained = min_drained.min(rss);
                max_drained = max_drained.max(rss);
            }
            println!(
                "{i:>10} {:>10} {:>12.1} {:>10.2} {:>6} {:>9} {:>10}",
                s.records,
                disk as f64 / 1048576.0,
                disk as f64 / cap as f64,
                s.generations,
                rss,
                heap_in_use().map_or("-".into(), |b| (b >> 20).to_string())
            );
        }
    }
    println!(
        "largest directory {:.2}× the cap; RSS {min_rss}–{max_rss} MiB after the first 10%, {min_drained}–{max_drained} MiB once drained; {:.0} records/s",
        max_disk as f64 / cap as f64,
        n as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Bytes the allocator has handed out and not had back (RSS minus this is memory it keeps free
/// for reuse), where glibc tells.
///
/// `mallinfo2` arrived in glibc 2.33; release builds link against 2.31 so that older boards run
/// them, so it is looked up at run time instead of linked.
fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        type Mallinfo2 = unsafe extern "C" fn() -> libc::mallinfo2;
        // SAFETY: dlsym with a NUL-terminated name only looks the symbol up.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) };
        if sym.is_null() {
            return None;
        }
        // SAFETY: glibc's mallinfo2 has exactly this signature, and it only reads the
        // allocator's statistics.
        let m = unsafe { std::mem::transmute::<*mut libc::c_void, Mallinfo2>(sym)() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
