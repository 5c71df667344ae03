//! Periodic telemetry: per-sensor rates and drops, inference latency percentiles per model, the
//! outbox, and process and board figures.

use super::system::{self, CpuSample, Disk, Temperature};
use super::Context;
use crate::outbox::OutboxStats;
use crate::pipeline::{LatencySummary, SensorTotals};
use crate::prediction::rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

/// One telemetry message.
#[derive(Debug, Serialize)]
pub struct Telemetry {
    /// Device id.
    pub device: String,
    /// When it was taken (RFC 3339).
    pub at: String,
    /// Seconds since the running configuration started.
    pub uptime_s: u64,
    /// Seconds the rates and percentiles cover.
    pub period_s: f64,
    /// Per sensor.
    pub sensors: BTreeMap<String, SensorTelemetry>,
    /// Per model: latency over the period (`null` when it ran no frame).
    pub models: BTreeMap<String, Option<LatencySummary>>,
    /// Per model with a candidate in its shadow: how often they agreed, and the candidate's
    /// latency over the period (compare with `models`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shadow: BTreeMap<String, ShadowTelemetry>,
    /// The outbox: records waiting, bytes, cap, lifetime counters.
    pub outbox: OutboxStats,
    /// Percent of one core this process used over the period.
    pub cpu_percent: Option<f64>,
    /// Resident memory of this process.
    pub rss_bytes: Option<u64>,
    /// Space on the file system of the data folder.
    pub disk: Option<Disk>,
    /// SoC temperatures; empty where the board exposes none.
    pub temperatures: Vec<Temperature>,
}

/// A shadow run's figures.
#[derive(Debug, Serialize)]
pub struct ShadowTelemetry {
    /// Candidate version.
    pub version: String,
    /// Frames both versions ran on since the shadow run began.
    pub frames: u64,
    /// Frames on which their results agreed.
    pub agreed: u64,
    /// `agreed / frames`; `null` before the first frame.
    pub agreement: Option<f64>,
    /// Frames the candidate failed on.
    pub errors: u64,
    /// The candidate's latency over the period.
    pub latency: Option<LatencySummary>,
}

/// A sensor's figures.
#[derive(Debug, Serialize)]
pub struct SensorTelemetry {
    /// Frames captured per second over the period.
    pub fps: f64,
    /// Frames dropped by the queue over the period.
    pub dropped: u64,
    /// Bad inputs skipped over the period.
    pub errors: u64,
    /// Counters since the start.
    pub totals: SensorTotals,
}

/// What the previous message saw, to report rates over the period.
pub struct Sampler {
    at: Instant,
    cpu: Option<CpuSample>,
    sensors: BTreeMap<String, SensorTotals>,
}

impl Sampler {
    /// Starts a period now.
    pub fn new(ctx: &Context) -> Self {
        Self {
            at: Instant::now(),
            cpu: CpuSample::now(),
            sensors: ctx
                .sensor_stats
                .iter()
                .map(|(id, s)| (id.to_string(), s.snapshot()))
                .collect(),
        }
    }

    /// The telemetry of the period since the last call; a new period starts.
    pub fn sample(&mut self, ctx: &Context) -> Telemetry {
        let now = Instant::now();
        let period = now.duration_since(self.at).as_secs_f64().max(1e-3);
        let mut sensors = BTreeMap::new();
        for (id, stats) in &ctx.sensor_stats {
            let t = stats.snapshot();
            let before = self.sensors.insert(id.to_string(), t).unwrap_or_default();
            sensors.insert(
                id.to_string(),
                SensorTelemetry {
                    fps: ((t.captured.saturating_sub(before.captured)) as f64 / period * 100.0)
                        .round()
                        / 100.0,
                    dropped: t.dropped.saturating_sub(before.dropped),
                    errors: t.errors.saturating_sub(before.errors),
                    totals: t,
                },
            );
        }
        let cpu = CpuSample::now();
        let cpu_percent = match (&cpu, &self.cpu) {
            (Some(now), Some(then)) => now.percent_since(then),
            _ => None,
        };
        self.cpu = cpu;
        self.at = now;
        Telemetry {
            device: ctx.device().to_string(),
            at: rfc3339(SystemTime::now()),
            uptime_s: ctx.started.elapsed().as_secs(),
            period_s: (period * 1000.0).round() / 1000.0,
            sensors,
            models: ctx
                .latencies
                .iter()
                .map(|(id, w)| (id.clone(), w.take()))
                .collect(),
            shadow: ctx
                .models
                .iter()
                .filter_map(|m| {
                    let s = m.slot.shadow()?;
                    let frames = s.frames.load(Ordering::Relaxed);
                    let agreed = s.agreed.load(Ordering::Relaxed);
                    Some((
                        m.slot.id.clone(),
                        ShadowTelemetry {
                            version: s.version.clone(),
                            frames,
                            agreed,
                            agreement: (frames > 0).then(|| agreed as f64 / frames as f64),
                            errors: s.errors.load(Ordering::Relaxed),
                            latency: s.latency.take(),
                        },
                    ))
                })
                .collect(),
            outbox: ctx.outbox.stats(),
            cpu_percent,
            rss_bytes: system::rss_bytes(),
            disk: system::disk(&ctx.config.device.data_dir),
            temperatures: system::temperatures(),
        }
    }
}
