//! The operator's one connection for watching a fleet and commanding it: keeps a [`Directory`]
//! up to date from the retained status and telemetry, says when the retained messages have all
//! arrived, and sends signed commands and hands each device's result back to its caller.

use super::directory::{Directory, Heard};
use crate::cli::operator;
use crate::config::{BrokerAddress, MqttConfig};
use crate::mqtt::session::{all_events, Connection, OnError};
use crate::mqtt::{options, topics};
use ed25519_dalek::SigningKey;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Requests queued for the event loop (commands being published) before publishing waits.
const REQUEST_QUEUE: usize = 64;
/// Events waiting for the reader; the event loop waits while it is full.
const EVENT_QUEUE: usize = 256;

/// Results being waited for, by device and command id.
type Waiting = Arc<Mutex<HashMap<(String, String), oneshot::Sender<Value>>>>;

/// A running observer.
pub(super) struct Observer {
    client: AsyncClient,
    prefix: String,
    directory: watch::Receiver<Directory>,
    ready: watch::Receiver<bool>,
    waiting: Waiting,
    task: JoinHandle<()>,
}

impl Observer {
    /// Connects (retrying with backoff) and starts following the fleet. The retained messages
    /// count as all in once a marker published after subscribing has come back and `settle`
    /// has passed with no new status (a clustered broker may deliver them out of order).
    pub(super) fn start(mqtt: &MqttConfig, address: &BrokerAddress, settle: Duration) -> Self {
        let client_id = format!("edgeinfer-fleet-{}", std::process::id());
        let mut opts = options::build(mqtt, address, client_id.clone());
        opts.set_clean_session(true);
        opts.set_max_packet_size(mqtt.max_packet_bytes, mqtt.max_packet_bytes);
        let conn = Connection::open(
            opts,
            REQUEST_QUEUE,
            EVENT_QUEUE,
            all_events,
            OnError::Retry {
                first: Duration::from_millis(500),
                max: Duration::from_secs(5),
            },
        );
        let client = conn.client().clone();
        let prefix = mqtt.topic_prefix.clone();
        let directory = Directory::new(&prefix);
        let mut filters = directory.filters().to_vec();
        filters.push(format!("{prefix}/+/cmd/+/result"));
        let marker = format!("{prefix}/_fleet/{client_id}");
        filters.push(marker.clone());
        let (directory_tx, directory_rx) = watch::channel(directory);
        let (ready_tx, ready_rx) = watch::channel(false);
        let waiting = Waiting::default();
        let reader = Reader {
            client: client.clone(),
            prefix: prefix.clone(),
            filters,
            marker,
            settle,
            directory: directory_tx,
            ready: ready_tx,
            waiting: Arc::clone(&waiting),
        };
        Self {
            client,
            prefix,
            directory: directory_rx,
            ready: ready_rx,
            waiting,
            task: tokio::spawn(reader.run(conn)),
        }
    }

    /// Waits until the retained messages are in.
    pub(super) async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The directory, to read or wait on.
    pub(super) fn directory(&self) -> watch::Receiver<Directory> {
        self.directory.clone()
    }

    /// Sends command `name` with `args` to `device`, signed with `key` and valid for `ttl_secs`,
    /// and waits for its result (the caller bounds the wait).
    pub(super) async fn command(
        &self,
        key: &SigningKey,
        device: &str,
        name: &str,
        args: Value,
        ttl_secs: u64,
    ) -> Result<Value, String> {
        let (command, envelope) = operator::sign(key, device, name, "fleet", ttl_secs, args);
        let (tx, rx) = oneshot::channel();
        let slot = (device.to_string(), command.id.clone());
        lock(&self.waiting).insert(slot.clone(), tx);
        let payload = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        let topic = topics::command(&self.prefix, device, name);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            lock(&self.waiting).remove(&slot);
            return Err(format!("cannot send {name}: {e}"));
        }
        rx.await
            .map_err(|_| "the fleet connection stopped".to_string())
    }

    /// Disconnects.
    pub(super) async fn close(self) {
        let _ = self.client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The task reading the connection.
struct Reader {
    client: AsyncClient,
    prefix: String,
    filters: Vec<String>,
    marker: String,
    settle: Duration,
    directory: watch::Sender<Directory>,
    ready: watch::Sender<bool>,
    waiting: Waiting,
}

impl Reader {
    async fn run(self, mut conn: Connection) {
        let mut settle_at: Option<tokio::time::Instant> = None;
        let mut warned = false;
        loop {
            let settled = async {
                match settle_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                event = conn.next() => event,
                _ = settled => {
                    settle_at = None;
                    self.ready.send_replace(true);
                    continue;
                }
            };
            match event {
                None => return,
                Some(Err(e)) => {
                    if !warned {
                        warn!(error = %e, "No broker connection; retrying");
                        warned = true;
                    }
                }
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    warned = false;
                    debug!("Fleet connection up");
                    let subscriptions = self
                        .filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    let request = self.client.subscribe_many(subscriptions);
                    if conn.request(request, None).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                    // Every device publishes its status again: on a broker whose retained
                    // messages do not reach subscribers on other nodes, this is how they do.
                    let request = topics::status_request(&self.prefix);
                    let ask = self
                        .client
                        .publish(request, QoS::AtLeastOnce, false, Vec::new());
                    let marker =
                        self.client
                            .publish(&self.marker, QoS::AtLeastOnce, false, Vec::new());
                    if conn.request(ask, None).await.is_err()
                        || conn.request(marker, None).await.is_err()
                    {
                        return;
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    if p.topic == self.marker {
                        if !*self.ready.borrow() {
                            settle_at = Some(tokio::time::Instant::now() + self.settle);
                        }
                    } else if p.topic.ends_with("/result") {
                        self.result(&p.topic, &p.payload);
                    } else {
                        let mut heard = Heard::Other;
                        self.directory
                            .send_modify(|d| heard = d.update(&p.topic, &p.payload));
                        // A status still arriving pushes the end of the snapshot out.
                        if let (Heard::Status(_), Some(at)) = (&heard, settle_at.as_mut()) {
                            *at = (*at).max(tokio::time::Instant::now() + self.settle / 2);
                        }
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Hands a command result to whoever waits for it.
    fn result(&self, topic: &str, payload: &[u8]) {
        let Ok(result) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let device = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|t| t.strip_prefix('/'))
            .and_then(|t| t.split('/').next())
            .unwrap_or("");
        let Some(id) = result["id"].as_str() else {
            return;
        };
        if let Some(tx) = lock(&self.waiting).remove(&(device.to_string(), id.to_string())) {
            let _ = tx.send(result);
        }
    }
}
