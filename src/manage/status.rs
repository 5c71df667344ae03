//! The retained status of a device: a birth message when the management connection is up, and
//! an offline message as its last will (or on a clean stop).

use super::{Context, ModelInfo};
use crate::prediction::rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The birth message.
#[derive(Debug, Serialize)]
pub struct Birth<'a> {
    /// Always true.
    pub online: bool,
    /// Device id.
    pub device: &'a str,
    /// Labels from `[device] labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// Daemon version.
    pub version: &'static str,
    /// When this management connection was made (RFC 3339): online since.
    pub connected_at: String,
    /// When the running configuration started (RFC 3339).
    pub started_at: String,
    /// Seconds since then, when this message was made.
    pub uptime_s: u64,
    /// Models with their versions and backends.
    pub models: Vec<ModelInfo>,
    /// Sensors.
    pub sensors: Vec<SensorInfo<'a>>,
    /// Whether commands can be verified (operator keys configured).
    pub commands: bool,
    /// The outbox now: backlog, and what went wrong with the store (`quarantined`,
    /// `write_errors`, `write_failing`).
    pub outbox: crate::outbox::OutboxStats,
}

/// A sensor in the birth message.
#[derive(Debug, Serialize)]
pub struct SensorInfo<'a> {
    /// Id.
    pub id: &'a str,
    /// Source type (`camera`, `line_replay`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Model it feeds.
    pub model: &'a str,
}

/// The birth message of the daemon now, on a connection made at `connected_at`.
pub fn birth(ctx: &Context, connected_at: SystemTime) -> Vec<u8> {
    let sensors = ctx
        .config
        .sensors
        .iter()
        .map(|s| SensorInfo {
            id: &s.id,
            kind: s.source.type_name(),
            model: &s.model,
        })
        .collect();
    let birth = Birth {
        online: true,
        device: ctx.device(),
        labels: &ctx.config.device.labels,
        version: env!("CARGO_PKG_VERSION"),
        connected_at: rfc3339(connected_at),
        started_at: rfc3339(ctx.started_at),
        uptime_s: ctx.started.elapsed().as_secs(),
        models: ctx.models(),
        sensors,
        commands: ctx
            .config
            .remote
            .as_ref()
            .is_some_and(|r| !r.operator_keys.is_empty()),
        outbox: ctx.outbox.stats(),
    };
    serde_json::to_vec(&birth).unwrap_or_default()
}

/// The offline message of `device` with its `labels`.
///
/// As the last will of a connection made at `connected_at`, `reason` is `connection lost` and
/// `at` is `None`: the broker sends it later, so when the device was last heard of is the newer
/// of `connected_at` and its last telemetry. On a clean stop, `reason` says why and `at` is now.
pub fn offline(
    device: &str,
    labels: &BTreeMap<String, String>,
    reason: &str,
    connected_at: SystemTime,
    at: Option<SystemTime>,
) -> Vec<u8> {
    let mut body = serde_json::json!({
        "online": false,
        "device": device,
        "labels": labels,
        "version": env!("CARGO_PKG_VERSION"),
        "reason": reason,
        "connected_at": rfc3339(connected_at),
    });
    if let Some(at) = at {
        body["at"] = rfc3339(at).into();
    }
    serde_json::to_vec(&body).unwrap_or_default()
}
