//! The commands a device obeys once a command is authenticated.

use super::auth::Command;
use super::ota::protocol::Activation;
use super::ota::{Ota, Refusal};
use super::{persist, unix_now, Context};
use crate::config::{Config, ConfigError, LoadError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// Names of the commands, as they appear in topics.
pub const NAMES: &[&str] = &[
    "ping",
    "get-config",
    "set-config",
    "restart-sensor",
    "list-models",
    "activate-model",
    "rollback-model",
    "outbox-stats",
];

/// Why a command failed; sent back as `{"code": .., "message": .., "details": ..}`.
#[derive(Debug)]
pub struct Failure {
    /// Short, stable name of the reason.
    pub code: &'static str,
    /// In words.
    pub message: String,
    /// More, by command (every config error for `set-config`).
    pub details: Option<Value>,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }
}

/// What the caller does once the result is sent.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Nothing.
    Nothing,
    /// Restart the daemon's pipeline on the config file just written.
    Reload,
}

/// Runs an authenticated command.
pub async fn execute(ctx: &Arc<Context>, command: &Command) -> Result<(Value, After), Failure> {
    let done = |v: Value| Ok((v, After::Nothing));
    match command.command.as_str() {
        "ping" => done(json!({
            "pong": true,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": ctx.started.elapsed().as_secs(),
            "device_time": unix_now(),
        })),
        "get-config" => {
            let path = config_path(ctx)?;
            let toml = std::fs::read_to_string(path)
                .map_err(|e| Failure::new("io", format!("cannot read {}: {e}", path.display())))?;
            done(json!({ "path": path, "toml": toml }))
        }
        "set-config" => set_config(ctx, &command.args).await,
        "restart-sensor" => {
            let args: SensorArgs = args(&command.args)?;
            let sensors = Arc::clone(&ctx.sensors);
            let id = args.sensor.clone();
            tokio::task::spawn_blocking(move || sensors.restart(&id))
                .await
                .map_err(|e| Failure::new("internal", e.to_string()))?
                .map_err(|e| {
                    let code = match e {
                        crate::sensor::RestartError::Unknown(_) => "unknown_sensor",
                        _ => "restart_failed",
                    };
                    Failure::new(code, e.to_string())
                })?;
            done(json!({ "restarted": args.sensor }))
        }
        "list-models" => {
            let versions: serde_json::Map<String, Value> = match &ctx.ota {
                Some(ota) => ctx
                    .models
                    .iter()
                    .map(|m| (m.slot.id.clone(), ota.versions(&m.slot.id)))
                    .collect(),
                None => serde_json::Map::new(),
            };
            done(json!({ "models": ctx.models(), "versions": versions }))
        }
        "activate-model" => {
            let a: ActivateArgs = args(&command.args)?;
            let ota = updates(ctx)?;
            blocking(move || ota.activate(&a.model, &a.version, a.mode)).await
        }
        "rollback-model" => {
            let a: ModelArgs = args(&command.args)?;
            let ota = updates(ctx)?;
            blocking(move || ota.rollback(&a.model)).await
        }
        "outbox-stats" => done(serde_json::to_value(ctx.outbox.stats()).unwrap_or_default()),
        other => Err(Failure::new(
            "unknown_command",
            format!("unknown command \"{other}\"; known: {}", NAMES.join(", ")),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateArgs {
    model: String,
    /// At least 8 hex digits of the version's sha256.
    version: String,
    /// `active` (on trial) or `shadow`.
    #[serde(default)]
    mode: Activation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelArgs {
    model: String,
}

fn updates(ctx: &Context) -> Result<Arc<Ota>, Failure> {
    ctx.ota
        .clone()
        .ok_or_else(|| Failure::new("unavailable", "model updates are not set up"))
}

/// Runs a model update step off the reactor (it loads models and writes files).
async fn blocking(
    f: impl FnOnce() -> Result<Value, Refusal> + Send + 'static,
) -> Result<(Value, After), Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::new("internal", e.to_string()))?
        .map(|v| (v, After::Nothing))
        .map_err(|r| Failure::new(r.code, r.message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorArgs {
    sensor: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigArgs {
    /// The whole new config file.
    toml: String,
}

fn args<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, Failure> {
    serde_json::from_value(value.clone())
        .map_err(|e| Failure::new("bad_args", format!("arguments: {e}")))
}

fn config_path(ctx: &Context) -> Result<&Path, Failure> {
    ctx.config_path
        .as_deref()
        .ok_or_else(|| Failure::new("unavailable", "the daemon was not started from a file"))
}

/// Validates the new config like `check-config`, refuses one that would cut the device off from
/// management, then replaces the file atomically (the current one kept as `.prev`) and asks for
/// a reload. An invalid config changes nothing and every problem is reported.
async fn set_config(ctx: &Arc<Context>, value: &Value) -> Result<(Value, After), Failure> {
    let path = config_path(ctx)?.to_path_buf();
    if ctx.reload.is_none() {
        return Err(Failure::new(
            "unavailable",
            "this daemon cannot reload its config",
        ));
    }
    let ConfigArgs { toml } = args(value)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let current_device = ctx.device().to_string();
    let checked = tokio::task::spawn_blocking(move || {
        let mut errors = match Config::from_toml(&toml, &base) {
            Ok(_) => Vec::new(),
            Err(LoadError::Invalid { errors, .. }) => errors,
            Err(other) => vec![ConfigError::new("", other.to_string())],
        };
        if let Ok(table) = toml.parse::<toml::Table>() {
            errors.extend(keeps_management(&table, &current_device));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        persist::replace_config(&path, &toml).map_err(|e| {
            vec![ConfigError::new(
                "",
                format!("cannot write {}: {e}", path.display()),
            )]
        })
    })
    .await
    .map_err(|e| Failure::new("internal", e.to_string()))?;
    match checked {
        Ok(previous) => Ok((
            json!({ "applied": true, "previous": previous, "reloading": true }),
            After::Reload,
        )),
        Err(errors) => {
            let list: Vec<String> = errors
                .iter()
                .map(|e| e.to_string().trim_start_matches(": ").to_string())
                .collect();
            Err(Failure {
                code: "invalid_config",
                message: format!("{} problem(s); nothing was changed", list.len()),
                details: Some(json!(list)),
            })
        }
    }
}

/// A new config must keep this device reachable and answerable. Checked on the TOML table, so
/// that it is reported along with every other problem of an invalid config.
fn keeps_management(table: &toml::Table, device: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let new_id = table
        .get("device")
        .and_then(|d| d.get("id"))
        .and_then(toml::Value::as_str);
    if new_id.is_some_and(|id| id != device) {
        errors.push(ConfigError::new(
            "device.id",
            format!("cannot change the device id remotely (it is \"{device}\")"),
        ));
    }
    if !table.contains_key("mqtt") {
        errors.push(ConfigError::new(
            "mqtt",
            "removing [mqtt] would cut the device off from management",
        ));
    }
    match table.get("remote") {
        None => errors.push(ConfigError::new(
            "remote",
            "removing [remote] would cut the device off from management",
        )),
        Some(r) => {
            let keys = r
                .get("operator_keys")
                .and_then(toml::Value::as_array)
                .map_or(0, Vec::len);
            if keys == 0 {
                errors.push(ConfigError::new(
                    "remote.operator_keys",
                    "without operator keys no further command would be accepted",
                ));
            }
        }
    }
    errors
}
