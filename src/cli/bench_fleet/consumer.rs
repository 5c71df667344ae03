//! The consumer side of the fleet bench: one client subscribed to every device's predictions,
//! status and telemetry, counting messages by kind and measuring how long after inference each
//! prediction arrives (inference time on the device, arrival here: same clock, one machine).

use crate::mqtt::session::{all_events, Connection, OnError};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What arrived since the last reset.
#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<String, u64>,
    predictions: u64,
    /// Inference → arrival, in µs, of every prediction.
    latencies_us: Vec<u64>,
}

/// Figures over a period.
pub(super) struct Summary {
    pub predictions_per_s: f64,
    pub messages_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub by_kind: BTreeMap<String, u64>,
}

/// A running consumer.
pub(super) struct Consumer {
    tally: Arc<Mutex<Tally>>,
}

impl Consumer {
    /// Connects to `broker` and subscribes under `prefix`.
    pub(super) fn start(broker: &str, prefix: &str) -> anyhow::Result<Consumer> {
        let address = crate::config::BrokerAddress::parse(broker).map_err(anyhow::Error::msg)?;
        let mut opts = MqttOptions::new(
            format!("edgeinfer-bench-fleet-{}", std::process::id()),
            address.host,
            address.port,
        );
        opts.set_max_packet_size(16 << 20, 16 << 20);
        opts.set_keep_alive(Duration::from_secs(30));
        let mut conn = Connection::open(
            opts,
            16,
            1024,
            all_events,
            OnError::Retry {
                first: Duration::from_millis(200),
                max: Duration::from_secs(2),
            },
        );
        let tally = Arc::new(Mutex::new(Tally::default()));
        let filters = [
            format!("{prefix}/+/predictions/+"),
            format!("{prefix}/+/status"),
            format!("{prefix}/+/telemetry"),
        ];
        let t = Arc::clone(&tally);
        tokio::spawn(async move {
            let client = conn.client().clone();
            while let Some(event) = conn.next().await {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let subs = filters
                            .iter()
                            .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                        if conn
                            .request(client.subscribe_many(subs), None)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let now = SystemTime::now();
                        let mut tally = t.lock().unwrap_or_else(|e| e.into_inner());
                        let kind = p
                            .topic
                            .rsplit('/')
                            .nth(usize::from(p.topic.contains("/predictions/")));
                        *tally
                            .by_kind
                            .entry(kind.unwrap_or("other").to_string())
                            .or_insert(0) += 1;
                        if p.topic.contains("/predictions/") {
                            record(&mut tally, &p.payload, now);
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(Consumer { tally })
    }

    /// Starts counting afresh.
    pub(super) fn reset(&self) {
        *self.tally.lock().unwrap_or_else(|e| e.into_inner()) = Tally::default();
    }

    /// Figures since the last reset, `elapsed` ago.
    pub(super) fn summary(&self, elapsed: Duration) -> Summary {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let secs = elapsed.as_secs_f64().max(1e-3);
        let mut l = tally.latencies_us.clone();
        l.sort_unstable();
        let at = |q: f64| {
            l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
                .map_or(0.0, |&us| us as f64 / 1e3)
        };
        Summary {
            predictions_per_s: tally.predictions as f64 / secs,
            messages_per_s: tally.by_kind.values().sum::<u64>() as f64 / secs,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: l.last().map_or(0.0, |&us| us as f64 / 1e3),
            by_kind: tally.by_kind.clone(),
        }
    }
}

/// Counts a prediction message (one, or a batch) and its latency.
fn record(tally: &mut Tally, payload: &[u8], now: SystemTime) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    for item in items {
        tally.predictions += 1;
        let Some(at) = item["inferred_at"].as_str() else {
            continue;
        };
        if let Ok(t) = humantime::parse_rfc3339(at) {
            if let Ok(d) = now.duration_since(t) {
                tally.latencies_us.push(d.as_micros() as u64);
            }
        }
    }
}
