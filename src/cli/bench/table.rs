//! The table `bench` prints: one row per backend, ratios to the reference.

use super::{BenchArgs, Measured};
use crate::backend;
use crate::config::OrtOptions;

pub(super) fn print_table(args: &BenchArgs, rows: &[Measured]) {
    let reference = rows
        .iter()
        .find(|r| r.backend == "onnxruntime-python")
        .or_else(|| rows.iter().find(|r| r.backend == "ort-cpu"));
    println!(
        "machine {} ({} CPUs)  edgeinfer {}",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "model {}  runs {}  warm-up {}  threads {}",
        args.model,
        args.runs,
        args.warmup,
        args.threads
            .map_or("default".to_string(), |t| t.to_string())
    );
    println!(
        "{:<20} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8}",
        "backend", "load ms", "median ms", "p90 ms", "p99 ms", "min ms", "peak MiB", "ratio"
    );
    for r in rows {
        let ratio = reference.map_or("-".to_string(), |b| {
            format!("{:.2}x", r.median_us / b.median_us)
        });
        println!(
            "{:<20} {:>8.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.1} {:>8}",
            r.backend,
            r.load_ms,
            r.median_us / 1e3,
            r.p90_us / 1e3,
            r.p99_us / 1e3,
            r.min_us / 1e3,
            r.peak_rss_kb as f64 / 1024.0,
            ratio
        );
    }
    if let Some(reference) = reference {
        println!("ratio: median / median of {}", reference.backend);
    }
    if !rows.iter().any(|r| r.backend.starts_with("ort-")) {
        println!("{}", onnxruntime_note());
    }
    for r in rows {
        if let (Some(frame), Some(pre), Some(post)) =
            (r.frame_median_us, r.pre_median_us, r.post_median_us)
        {
            println!(
                "{}: per frame {:.2} ms vs inference alone {:.2} ms = {:.3}x; {}",
                r.backend,
                frame / 1e3,
                r.median_us / 1e3,
                frame / r.median_us,
                our_share(pre, post, r.median_us)
            );
        }
        if let (Some(pre), Some(post)) = (r.pre_in_frame_median_us, r.post_in_frame_median_us) {
            println!(
                "{}: inside the frame, {}",
                r.backend,
                our_share(pre, post, r.median_us)
            );
        }
        if let (Some(frame), Some(gapped)) = (r.frame_median_us, r.gapped_median_us) {
            println!(
                "{}: inference after an idle gap as long as pre + post {:.2} ms ({:.3}x inference alone); per frame / that = {:.3}x",
                r.backend,
                gapped / 1e3,
                gapped / r.median_us,
                frame / gapped
            );
        }
    }
}

/// Why no onnxruntime backend was measured, for a table without one.
fn onnxruntime_note() -> String {
    if !backend::compiled_names().contains(&"ort-cpu") {
        return if cfg!(target_arch = "arm") {
            "onnxruntime: not in this build: none is published for 32-bit ARM, so this build runs tract only".into()
        } else {
            "onnxruntime: not in this build (cargo feature \"ort\"): tract only".into()
        };
    }
    match backend::by_name("ort-cpu", &OrtOptions::default()).map(|b| b.check()) {
        Some(Err(reason)) => format!("onnxruntime: not available: {reason}"),
        _ => "onnxruntime: not measured (name it with --backend ort-cpu)".into(),
    }
}

/// Pre- and post-processing times (µs) and their share of `inference_us`, for the report.
fn our_share(pre_us: f64, post_us: f64, inference_us: f64) -> String {
    format!(
        "pre-processing {:.3} ms + post-processing {:.3} ms = {:.1}% of inference",
        pre_us / 1e3,
        post_us / 1e3,
        100.0 * (pre_us + post_us) / inference_us
    )
}
