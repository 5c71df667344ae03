//! A real MQTT client for tests: subscribes with QoS 1, records every message it receives (retained
//! ones included) with its arrival time, and publishes.

use super::wait::wait_until;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages received, as (topic, payload), in arrival order.
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A connected client and the thread that records what arrives.
pub struct Recorder {
    client: Client,
    /// Every message, a batch of predictions counted as its predictions (see [`unbatch`]).
    pub messages: Received,
    /// When each element of `messages` arrived.
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A batch (JSON array) as its elements, anything else as one; JSON in one canonical form (keys
/// sorted), so that a prediction reads the same whether it came alone or in a batch.
pub fn unbatch(payload: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect(),
        Ok(v) => vec![serde_json::to_vec(&v).unwrap()],
        Err(_) => vec![payload.to_vec()],
    }
}

/// What the connection thread has learnt: nothing yet, subscribed, or why the broker refused.
type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

impl Recorder {
    /// A consumer of `filter` on a loopback broker: a client id of its own and a persistent
    /// session, so that what is published while it is disconnected reaches it later.
    pub fn consumer(port: u16, filter: &str) -> Recorder {
        Recorder::consumer_at("127.0.0.1", port, filter)
    }

    /// Like `consumer`, for a broker at `host` rather than on loopback.
    pub fn consumer_at(host: &str, port: u16, filter: &str) -> Recorder {
        // Unique per consumer: two with one client id would keep taking each other's session.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("test-consumer-{}-{port}-{n}", std::process::id());
        let mut opts = options(host, port, &id);
        opts.set_clean_session(false);
        Recorder::connect(opts, &[filter]).expect("consumer could not subscribe")
    }

    /// Connects and subscribes to `filters` (QoS 1); the error says why the broker did not let it
    /// in.
    pub fn connect(opts: MqttOptions, filters: &[&str]) -> Result<Recorder, String> {
        let (client, connection) = Client::new(opts, 100);
        let outcome: Outcome = Arc::new(Mutex::new(None));
        let mut recorder = Recorder {
            client: client.clone(),
            messages: Arc::default(),
            arrivals: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        let filters = filters.iter().map(|f| f.to_string()).collect();
        let thread = {
            let (messages, arrivals, stop) = (
                recorder.messages.clone(),
                recorder.arrivals.clone(),
                recorder.stop.clone(),
            );
            let outcome = outcome.clone();
            std::thread::spawn(move || {
                record(
                    client, connection, filters, outcome, stop, messages, arrivals,
                )
            })
        };
        recorder.thread = Some(thread);
        if !wait_until(Duration::from_secs(10), || {
            outcome.lock().unwrap().is_some()
        }) {
            return Err("no answer from the broker".into());
        }
        // Left in place, so that the thread knows the first outcome is reported.
        let first = outcome.lock().unwrap().clone().unwrap();
        // On an error, dropping the recorder stops its thread.
        first.map(|()| recorder)
    }

    /// Publishes with QoS 1.
    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .unwrap();
    }

    /// Messages received (a batch counts as its predictions).
    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Every message body parsed as JSON, in arrival order.
    pub fn json(&self) -> Vec<(String, serde_json::Value)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(t, p)| {
                (
                    t.clone(),
                    serde_json::from_slice(p).expect("payload is JSON"),
                )
            })
            .collect()
    }

    /// Ids of received predictions, in arrival order (duplicates kept).
    pub fn ids(&self) -> Vec<String> {
        self.json()
            .into_iter()
            .map(|(_, v)| v["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Payloads received on `topic`, in arrival order.
    pub fn on(&self, topic: &str) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// JSON payloads received on `topic`, in arrival order (non-JSON ones left out).
    pub fn json_on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.on(topic)
            .iter()
            .filter_map(|p| serde_json::from_slice(p).ok())
            .collect()
    }

    /// Waits for a JSON message on `topic` that satisfies `f`, and returns it.
    pub fn wait_json(
        &self,
        topic: &str,
        timeout: Duration,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.json_on(topic).into_iter().find(|v| f(v));
            found.is_some()
        });
        found
    }
}

/// The connection thread: subscribes on every (re)connection, records each message, and reports
/// the first outcome (all filters acknowledged, or the error that ended the first attempt).
fn record(
    client: Client,
    mut connection: rumqttc::Connection,
    filters: Vec<String>,
    outcome: Outcome,
    stop: Arc<AtomicBool>,
    messages: Received,
    arrivals: Arc<Mutex<Vec<Instant>>>,
) {
    let mut pending_subacks = filters.len();
    let report = |result: Result<(), String>| {
        let mut o = outcome.lock().unwrap();
        let first = o.is_none();
        if first {
            *o = Some(result);
        }
        first
    };
    while !stop.load(Ordering::Relaxed) {
        match connection.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                if filters.is_empty() {
                    report(Ok(()));
                }
                pending_subacks = filters.len();
                for f in &filters {
                    let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                }
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                pending_subacks = pending_subacks.saturating_sub(1);
                if pending_subacks == 0 {
                    report(Ok(()));
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                // A batch of predictions counts as its predictions.
                let items = if p.topic.contains("/predictions/") {
                    unbatch(&p.payload)
                } else {
                    vec![p.payload.to_vec()]
                };
                let now = Instant::now();
                arrivals
                    .lock()
                    .unwrap()
                    .extend(std::iter::repeat_n(now, items.len()));
                messages
                    .lock()
                    .unwrap()
                    .extend(items.into_iter().map(|b| (p.topic.clone(), b)))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if report(Err(e.to_string())) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(_) => {}
        }
    }
    let _ = client.try_disconnect();
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// MQTT options for a test client of `host:port` (5 s keep-alive, packets up to 4 MiB).
fn options(host: &str, port: u16, client_id: &str) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts
}

/// MQTT options for a plain test client of loopback `port`.
pub fn plain_options(port: u16, client_id: &str) -> MqttOptions {
    options("127.0.0.1", port, client_id)
}

/// MQTT options for a test client of a TLS broker, with the client certificate given (if any).
pub fn tls_options(
    port: u16,
    client_id: &str,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> MqttOptions {
    let tls = edgeinfer::config::TlsConfig {
        ca_file: Some(ca.to_path_buf()),
        cert_file: client.map(|c| c.0.clone()),
        key_file: client.map(|c| c.1.clone()),
    };
    let config = edgeinfer::mqtt::tls::client_config(&tls).unwrap();
    let mut opts = plain_options(port, client_id);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    opts
}
