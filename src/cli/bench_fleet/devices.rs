//! The simulated fleet: a config per device, and one [`Daemon`] per device started on the
//! process's runtime.

use super::BenchFleetArgs;
use crate::config::Config;
use crate::daemon::{Daemon, Options, Running};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Each device's config: the model fed by a looping line replay at `--rate`, the outbox, the
/// broker, and remote management trusting the operator key, with labels `site` (ten sites)
/// and `bench = "fleet"`.
pub(super) fn configs(args: &BenchFleetArgs) -> anyhow::Result<Vec<Config>> {
    let key = std::fs::read_to_string(&args.operator_key)
        .with_context(|| format!("{}", args.operator_key.display()))?;
    let key = key.trim();
    let model =
        std::fs::canonicalize(&args.model).with_context(|| format!("{}", args.model.display()))?;
    let labels = std::fs::canonicalize(&args.labels)
        .with_context(|| format!("{}", args.labels.display()))?;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let readings = dir.join("readings.csv");
    let mut text = String::from("seconds,temperature,humidity,vibration\n");
    for i in 0..60 {
        text.push_str(&format!(
            "{i},{},{},{}\n",
            40 + i % 30,
            50 + i % 10,
            0.5 + (i % 7) as f64 * 0.4
        ));
    }
    std::fs::write(&readings, text)?;
    (0..args.devices)
        .map(|i| {
            let id = format!("sim-{i:05}");
            let toml = device_toml(&id, i, &dir, &model, &labels, &readings, key, args);
            Config::from_toml(&toml, &dir).map_err(|e| anyhow::anyhow!("{id}: {e}"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn device_toml(
    id: &str,
    i: usize,
    dir: &Path,
    model: &Path,
    labels: &Path,
    readings: &Path,
    key: &str,
    args: &BenchFleetArgs,
) -> String {
    format!(
        r#"
[device]
id = "{id}"
data_dir = "{data}"
labels = {{ site = "site-{site:02}", bench = "fleet" }}

[[models]]
id = "vibration"
path = "{model}"
threads = 1
preprocess = {{ type = "record", fields = [1, 2, 3] }}
postprocess = {{ type = "classify", top_k = 2, labels = "{labels}" }}

[[sensors]]
id = "line0"
model = "vibration"
type = "line_replay"
path = "{readings}"
header = true
rate = {rate}
loop = true

[outbox]
cache_bytes = 1048576

[mqtt]
broker = "{broker}"

[remote]
operator_keys = ["{key}"]
telemetry_interval_secs = {telemetry}

[remote.ota]
trial_predictions = {trial}
"#,
        data = dir.join(id).display(),
        site = i % 10,
        model = model.display(),
        labels = labels.display(),
        readings = readings.display(),
        rate = args.rate,
        broker = args.broker,
        telemetry = args.telemetry_secs,
        trial = args.trial_predictions,
    )
}

/// Builds and starts a daemon per config, `ramp` per second.
pub(super) async fn start(
    configs: Vec<Config>,
    ramp: f64,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<Running>> {
    let mut running = Vec::with_capacity(configs.len());
    let gap = Duration::from_secs_f64(1.0 / ramp);
    let mut next = tokio::time::Instant::now();
    let total = configs.len();
    for (n, config) in configs.into_iter().enumerate() {
        tokio::time::sleep_until(next).await;
        next += gap;
        let id = config.device.id.clone();
        let daemon = Daemon::build(config, Options::default())
            .await
            .map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
        running.push(
            daemon
                .start(shutdown)
                .map_err(|e| anyhow::anyhow!("{id}: {e}"))?,
        );
        if (n + 1) % 100 == 0 || n + 1 == total {
            info!(started = n + 1, of = total, "Devices started");
        }
    }
    Ok(running)
}

/// Stops every device.
pub(super) async fn stop(fleet: Vec<Running>, shutdown: &CancellationToken) {
    shutdown.cancel();
    for r in fleet {
        r.stop().await;
    }
}

/// Threads of this process.
pub(super) fn threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Raises the open-file limit to its hard limit: each device holds two connections and its
/// outbox files.
pub(super) fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
