//! The retained status of a device: a birth message when the management connection is up, and
//! an offline message as its last will (or on a clean stop).

use super::{Context, ModelInfo};
use crate::prediction::rfc3339;
use serde::Serialize;

/// The birth message.
#[derive(Debug, Serialize)]
pub struct Birth<'a> {
    /// Always true.
    pub online: bool,
    /// Device id.
    pub device: &'a str,
    /// Daemon version.
    pub version: &'static str,
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

/// The birth message of the daemon now.
pub fn birth(ctx: &Context) -> Vec<u8> {
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
        version: env!("CARGO_PKG_VERSION"),
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

/// The offline message: `reason` is `connection lost` in the last will, or why the daemon
/// stopped.
pub fn offline(device: &str, reason: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "online": false,
        "device": device,
        "reason": reason,
    }))
    .unwrap_or_default()
}
