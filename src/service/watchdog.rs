//! Watchdog pings and status lines for the service manager.
//!
//! A ping means "the pipeline is making progress": every inference worker is either waiting for
//! input or has been on its current frame for less than the watchdog timeout. A worker stuck in a
//! model run or an outbox write therefore stops the pings, and systemd restarts the service.

use super::Notifier;
use crate::outbox::Outbox;
use crate::pipeline::{Heartbeat, SensorStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// How often the status line is refreshed without a watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Pings the watchdog (if one is set) at half its timeout while every worker makes progress, and
/// refreshes `STATUS=` with a one-line summary, until `shutdown`.
pub async fn supervise(
    notifier: Arc<Notifier>,
    workers: Vec<(String, Arc<Heartbeat>)>,
    sensors: Vec<Arc<SensorStats>>,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
) {
    let timeout = notifier.watchdog();
    let every = timeout.map_or(STATUS_EVERY, |t| t / 2);
    let mut ticks = tokio::time::interval(every);
    let mut stalled_before = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let stalled: Vec<(&str, Duration)> = workers
            .iter()
            .filter_map(|(model, h)| {
                let busy = h.busy_for()?;
                (busy >= timeout.unwrap_or(Duration::MAX)).then_some((model.as_str(), busy))
            })
            .collect();
        let inferred: u64 = sensors
            .iter()
            .map(|s| s.inferred.load(Ordering::Relaxed))
            .sum();
        let backlog = outbox.records();
        if stalled.is_empty() {
            if stalled_before {
                info!("Inference workers are making progress again; watchdog pings resumed");
                stalled_before = false;
            }
            let ping = if timeout.is_some() {
                "WATCHDOG=1\n"
            } else {
                ""
            };
            notifier.send(&format!(
                "{ping}STATUS=Running: {inferred} predictions, {backlog} waiting in the outbox"
            ));
        } else {
            if !stalled_before {
                for (model, busy) in &stalled {
                    error!(
                        model,
                        busy_ms = busy.as_millis() as u64,
                        "Inference worker stalled on one frame; watchdog pings stopped"
                    );
                }
                stalled_before = true;
            }
            let names: Vec<&str> = stalled.iter().map(|(m, _)| *m).collect();
            notifier.send(&format!("STATUS=Stalled: {}", names.join(", ")));
        }
    }
}
