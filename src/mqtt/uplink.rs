//! The uplink: publishes outbox records with QoS 1 and deletes them on their PUBACK.
//!
//! Every connection gets a fresh rumqttc `EventLoop`, so no state carries over between connections:
//! after a reconnect the uplink starts again from what is in the outbox (see [`super::drain`] for the
//! order and batching). rumqttc hands out packet ids as it writes publishes, in the order they were
//! queued; the uplink keeps that order to map each packet id back to its outbox keys.

use super::drain::{Batching, Flight};
use super::session::{all_events, Backoff, Connection, OnError, SessionEnd};
use super::topics;
use crate::config::{BrokerAddress, MqttConfig};
use crate::outbox::Outbox;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Drains the outbox to the broker until shutdown.
pub struct Uplink {
    config: MqttConfig,
    address: BrokerAddress,
    device: String,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
    /// Newest record stored before the uplink started: the first connection's backlog.
    backlog_end: Option<u64>,
}

/// Events from the event loop task; bounded, and the event loop waits when it is full.
const EVENT_QUEUE: usize = 64;
/// At shutdown, how long to wait for PUBACKs of messages in flight.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// At shutdown, how long to wait for the DISCONNECT to be written.
const DISCONNECT_WAIT: Duration = Duration::from_millis(500);

impl Uplink {
    /// An uplink for `device`; fails only on a broker URL that `validate()` would have refused.
    pub fn new(
        config: MqttConfig,
        device: String,
        outbox: Arc<Outbox>,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let address = BrokerAddress::parse(&config.broker)?;
        Ok(Self {
            config,
            address,
            device,
            backlog_end: outbox.last_seq(),
            outbox,
            shutdown,
        })
    }

    /// Connects, publishes, reconnects with exponential backoff, until shutdown.
    pub async fn run(self) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.reconnect_min_ms),
            Duration::from_millis(self.config.reconnect_max_ms),
        );
        // The first failure of an outage is a warning; its retries are only debug lines.
        let mut outage_reported = false;
        let mut backlog_end = self.backlog_end;
        loop {
            match self.session(backlog_end).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Lost {
                    connected: true,
                    reason,
                } => {
                    backoff.reset();
                    outage_reported = true;
                    warn!(broker = %self.config.broker, reason, "Connection to broker lost; predictions are kept in the outbox");
                }
                SessionEnd::Lost {
                    connected: false,
                    reason,
                } if !outage_reported => {
                    outage_reported = true;
                    warn!(broker = %self.config.broker, reason, "Cannot connect to broker; predictions are kept in the outbox, retrying");
                }
                SessionEnd::Lost {
                    connected: false,
                    reason,
                } => {
                    debug!(broker = %self.config.broker, reason, retry_in_ms = backoff.current().as_millis() as u64, "Broker still not reachable");
                }
            }
            if !backoff.wait(&self.shutdown).await {
                break;
            }
            // What was stored while there was no connection is the next one's backlog.
            backlog_end = self.outbox.last_seq();
        }
        debug!("Uplink stopped");
    }

    fn options(&self) -> MqttOptions {
        let client_id = self
            .config
            .client_id
            .clone()
            .unwrap_or_else(|| self.device.clone());
        let mut opts = super::options::build(&self.config, &self.address, client_id);
        opts.set_clean_session(true);
        opts.set_inflight(self.config.max_inflight);
        opts.set_max_packet_size(self.config.max_packet_bytes, self.config.max_packet_bytes);
        opts
    }

    /// One connection, from CONNECT to its loss or shutdown; records up to `backlog_end` are its
    /// backlog, sent as historical.
    async fn session(&self, backlog_end: Option<u64>) -> SessionEnd {
        let window = self.config.max_inflight as usize;
        let mut conn = Connection::open(
            self.options(),
            window + 8,
            EVENT_QUEUE,
            all_events,
            OnError::Stop,
        );
        let client = conn.client().clone();
        let mut state = Flight::new(None);
        let notify = self.outbox.notifier();
        let mut connected = false;

        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    if connected {
                        self.drain_acks(&mut conn, &mut state).await;
                    }
                    // Give the DISCONNECT a moment to leave; anything unacked stays in the outbox.
                    conn.close(DISCONNECT_WAIT).await;
                    return SessionEnd::Shutdown;
                }
                event = conn.next() => match event {
                    None => break SessionEnd::Lost { connected, reason: "event loop ended".into() },
                    Some(Err(e)) => break SessionEnd::Lost { connected, reason: e.to_string() },
                    Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                        connected = true;
                        state = Flight::new(backlog_end);
                        let backlog = self.outbox.records();
                        info!(broker = %self.config.broker, session_present = ack.session_present, backlog, "Connected to broker");
                        if let Err(reason) = self.fill(&client, &mut state, window) {
                            break SessionEnd::Lost { connected, reason };
                        }
                    }
                    Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => state.written(pkid),
                    Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        self.acked(&mut state, ack.pkid);
                        if let Err(reason) = self.fill(&client, &mut state, window) {
                            break SessionEnd::Lost { connected, reason };
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = notify.notified(), if connected => {
                    if let Err(reason) = self.fill(&client, &mut state, window) {
                        break SessionEnd::Lost { connected, reason };
                    }
                }
            }
        }
    }

    /// At shutdown: waits a little for PUBACKs of what is in flight, publishing nothing new, so
    /// that a clean stop leaves nothing to send twice.
    async fn drain_acks(&self, conn: &mut Connection, state: &mut Flight) {
        let _ = tokio::time::timeout(DRAIN_WAIT, async {
            while state.in_flight() > 0 {
                match conn.next().await {
                    Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => state.written(pkid),
                    Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => self.acked(state, ack.pkid),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        })
        .await;
    }

    fn acked(&self, state: &mut Flight, pkid: u16) {
        if let Some(keys) = state.acked(pkid) {
            if let Err(e) = self.outbox.ack(&keys) {
                error!(records = keys.len(), error = %e, "Cannot delete acknowledged records; they will be sent again");
            }
        }
    }

    /// Queues publishes of the next pending records until `window` messages are in flight.
    fn fill(&self, client: &AsyncClient, state: &mut Flight, window: usize) -> Result<(), String> {
        let room = window.saturating_sub(state.in_flight());
        if room == 0 {
            return Ok(());
        }
        let batching = Batching {
            records: self.config.batch_records,
            max_packet: self.config.max_packet_bytes,
        };
        let topic =
            |sensor: &str| topics::predictions(&self.config.topic_prefix, &self.device, sensor);
        let topic_len = |sensor: &str| topic(sensor).len();
        let mut oversized = Vec::new();
        let messages = state
            .next_messages(
                &self.outbox,
                room,
                self.config.live_share,
                batching,
                &topic_len,
                &mut oversized,
            )
            .map_err(|e| e.to_string())?;
        for o in oversized {
            // Publishing it would fail the connection on every attempt, blocking all others.
            error!(seq = o.key.seq, sensor = %o.sensor, bytes = o.bytes, max_packet_bytes = self.config.max_packet_bytes, "Prediction too large to publish; removed from the outbox");
            self.outbox.discard(o.key).map_err(|e| e.to_string())?;
        }
        for m in messages {
            client
                .try_publish(topic(&m.sensor), QoS::AtLeastOnce, false, m.payload)
                .map_err(|e| format!("cannot queue publish: {e}"))?;
            state.queued(m.keys);
        }
        Ok(())
    }
}
