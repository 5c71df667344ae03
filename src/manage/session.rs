//! The management connection: status with a last will, telemetry, commands and their results.

use super::auth::{Authenticator, Policy};
use super::commands::After;
use super::dispatch::{self, authenticate, failure};
use super::ota::protocol::{topic, Manifest, Progress, State, MANIFEST_COMMAND};
use super::ota::Notice;
use super::telemetry::Sampler;
use super::{status, Context};
use crate::config::{BrokerAddress, MqttConfig, RemoteConfig};
use crate::mqtt::session::{Backoff, Connection, OnError, SessionEnd};
use crate::mqtt::{options, topics};
use crate::pipeline::SlotEvent;
use rumqttc::{AsyncClient, Event, LastWill, Packet, Publish, QoS};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Events from the event loop task (connection, incoming messages, errors; the rest are not
/// forwarded). Bounded, and the event loop waits when it is full; the session drains it even
/// while it waits to queue a result, so the two never wait on each other.
const EVENT_QUEUE: usize = 64;
/// Requests queued to rumqttc (results, acknowledgements, status, telemetry). When it is full a
/// result waits for room; telemetry is skipped.
const REQUEST_QUEUE: usize = 64;
/// Commands received but not yet handled, in bytes. Commands are acknowledged only once handled,
/// so the broker's in-flight window normally bounds them; past this, a command is answered
/// `busy` (best effort) and dropped.
const INBOX_BYTES: usize = 16 * 1024 * 1024;
/// Least time between two republished statuses asked for on the status request topic, so that
/// many operators (or a flood) cost a device one status message per this period.
const STATUS_REQUEST_EVERY: Duration = Duration::from_secs(5);
/// At shutdown, how long to wait for the offline status and DISCONNECT to be written.
const DISCONNECT_WAIT: Duration = Duration::from_millis(500);

/// The management task of one daemon generation.
pub struct Control {
    mqtt: MqttConfig,
    remote: RemoteConfig,
    address: BrokerAddress,
    ctx: Arc<Context>,
    auth: Arc<Mutex<Result<Authenticator, String>>>,
    shutdown: CancellationToken,
    /// What model updates ask to publish.
    notices: Option<mpsc::Receiver<Notice>>,
    /// What the workers report about model changes.
    slot_events: Option<mpsc::Receiver<SlotEvent>>,
}

impl Control {
    /// The management task; `None` when the config has no `[remote]` (or no `[mqtt]`).
    pub fn new(
        ctx: Arc<Context>,
        shutdown: CancellationToken,
        notices: mpsc::Receiver<Notice>,
        slot_events: mpsc::Receiver<SlotEvent>,
    ) -> Option<Result<Self, String>> {
        let mqtt = ctx.config.mqtt.clone()?;
        let remote = ctx.config.remote.clone()?;
        let address = match BrokerAddress::parse(&mqtt.broker) {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        let policy = Policy {
            device: ctx.config.device.id.clone(),
            keys: remote.verifying_keys(),
            max_bytes: remote.max_command_bytes,
            max_lifetime_secs: remote.max_command_lifetime_secs,
            clock_skew_secs: remote.clock_skew_secs,
        };
        let replay_file = ctx
            .config
            .device
            .data_dir
            .join("remote")
            .join("replay.json");
        // A damaged high-water file must not let old commands through, nor stop the daemon:
        // commands are refused (with this reason) until an operator repairs it on the device.
        let auth = Authenticator::open(policy, replay_file.clone()).map_err(|e| {
            let reason = format!("{}: {e}", replay_file.display());
            tracing::error!(
                reason,
                "Cannot read the replay high-water marks; commands are refused"
            );
            reason
        });
        Some(Ok(Self {
            mqtt,
            remote,
            address,
            ctx,
            auth: Arc::new(Mutex::new(auth)),
            shutdown,
            notices: Some(notices),
            slot_events: Some(slot_events),
        }))
    }

    fn prefix(&self) -> &str {
        &self.mqtt.topic_prefix
    }

    fn device(&self) -> &str {
        &self.ctx.config.device.id
    }

    /// Connects, serves, reconnects with exponential backoff, until shutdown.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.mqtt.reconnect_min_ms),
            Duration::from_millis(self.mqtt.reconnect_max_ms),
        );
        let mut sampler = Sampler::new(&self.ctx);
        let watcher = match (&self.ctx.ota, self.slot_events.take()) {
            (Some(ota), Some(events)) => Some(tokio::spawn(Arc::clone(ota).watch(events))),
            _ => None,
        };
        let (_keep, mut notices) = match self.notices.take() {
            Some(n) => (None, n),
            // Without updates nothing is ever noticed.
            None => {
                let (tx, rx) = mpsc::channel(1);
                (Some(tx), rx)
            }
        };
        loop {
            let end = self.session(&mut sampler, &mut notices).await;
            if !backoff
                .after(end, "management", &self.mqtt.broker, &self.shutdown)
                .await
            {
                break;
            }
        }
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(ota) = &self.ctx.ota {
            let ota = Arc::clone(ota);
            let _ = tokio::task::spawn_blocking(move || ota.save()).await;
        }
        debug!("Management stopped");
    }

    /// Options of a connection made at `connected_at` (its last will says so).
    fn options(&self, connected_at: SystemTime) -> rumqttc::MqttOptions {
        let base = self
            .mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| self.device().to_string());
        let mut opts = options::build(&self.mqtt, &self.address, format!("{base}-ctl"));
        opts.set_clean_session(true);
        // Flow control: the broker sends no more than its in-flight window of unacknowledged
        // commands, so a flood waits at the broker instead of piling up here.
        opts.set_manual_acks(true);
        opts.set_max_packet_size(self.remote.max_message_bytes, self.mqtt.max_packet_bytes);
        opts.set_last_will(LastWill::new(
            topics::status(self.prefix(), self.device()),
            self.offline("connection lost", connected_at, None),
            QoS::AtLeastOnce,
            true,
        ));
        opts
    }

    /// The offline status (see [`status::offline`]).
    fn offline(&self, reason: &str, connected_at: SystemTime, at: Option<SystemTime>) -> Vec<u8> {
        let labels = &self.ctx.config.device.labels;
        status::offline(self.device(), labels, reason, connected_at, at)
    }

    /// One connection, from CONNECT to its loss or shutdown.
    async fn session(
        &self,
        sampler: &mut Sampler,
        notices: &mut mpsc::Receiver<Notice>,
    ) -> SessionEnd {
        // Acknowledgements and other outgoing events are not passed on, so they cannot fill the
        // queue and stall the event loop.
        let connected_at = SystemTime::now();
        let mut conn = Connection::open(
            self.options(connected_at),
            REQUEST_QUEUE,
            EVENT_QUEUE,
            |e| matches!(e, Event::Incoming(Packet::Publish(_))),
            OnError::Stop,
        );
        let client = conn.client().clone();
        let mut connected = false;
        let period = Duration::from_secs(self.remote.telemetry_interval_secs);
        let mut telemetry = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        telemetry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let status_topic = topics::status(self.prefix(), self.device());
        let request_topic = topics::status_request(self.prefix());
        let mut last_request: Option<std::time::Instant> = None;
        let mut inbox = Inbox::default();

        loop {
            if let Some(reason) = inbox.lost.take() {
                break SessionEnd::Lost { connected, reason };
            }
            if !self.shutdown.is_cancelled() {
                if let Some(p) = inbox.queue.pop_front() {
                    inbox.bytes -= p.payload.len();
                    self.command(&client, p, &mut conn, &mut inbox).await;
                    continue;
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    if connected {
                        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, self.offline("stopped", connected_at, Some(SystemTime::now())));
                    }
                    conn.close(DISCONNECT_WAIT).await;
                    return SessionEnd::Shutdown;
                }
                event = conn.next() => match event {
                    None => break SessionEnd::Lost { connected, reason: "event loop ended".into() },
                    Some(Err(e)) => break SessionEnd::Lost { connected, reason: e.to_string() },
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        connected = true;
                        info!(broker = %self.mqtt.broker, "Management connected");
                        let filters = [
                            topics::all_commands(self.prefix(), self.device()),
                            topics::status_request(self.prefix()),
                        ];
                        let subscribe = filters.map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
                        if let Err(e) = client.try_subscribe_many(subscribe) {
                            break SessionEnd::Lost { connected, reason: format!("cannot subscribe: {e}") };
                        }
                        if let Err(e) = client.try_publish(&status_topic, QoS::AtLeastOnce, true, status::birth(&self.ctx, connected_at)) {
                            break SessionEnd::Lost { connected, reason: format!("cannot publish status: {e}") };
                        }
                        if let Err(reason) = self.start_updates(&client) {
                            break SessionEnd::Lost { connected, reason };
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == request_topic => {
                        self.status_requested(&client, &p, &mut last_request, connected_at);
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => self.receive(&client, p, &mut inbox),
                    Some(Ok(_)) => {}
                },
                Some(notice) = notices.recv(), if connected => {
                    // A lost connection shows up as an event next.
                    match notice {
                        Notice::Progress(p) => {
                            let request = self.progress_request(&client, &p);
                            self.send(&client, request, &mut conn, &mut inbox).await;
                        }
                        Notice::StatusChanged => {
                            let request = client.publish(&status_topic, QoS::AtLeastOnce, true, status::birth(&self.ctx, connected_at));
                            self.send(&client, request, &mut conn, &mut inbox).await;
                        }
                    }
                }
                _ = telemetry.tick(), if connected => {
                    let body = serde_json::to_vec(&sampler.sample(&self.ctx)).unwrap_or_default();
                    let topic = topics::telemetry(self.prefix(), self.device());
                    // Retained, so that a fleet view sees every device's last figures at once.
                    if let Err(e) = client.try_publish(topic, QoS::AtMostOnce, true, body) {
                        debug!(error = %e, "Telemetry skipped: request queue full");
                    }
                }
            }
        }
    }

    /// Answers a status request with the birth message again, at most once per
    /// [`STATUS_REQUEST_EVERY`] (`last` is when it last did), and acknowledges it.
    fn status_requested(
        &self,
        client: &AsyncClient,
        p: &Publish,
        last: &mut Option<std::time::Instant>,
        connected_at: SystemTime,
    ) {
        if last.is_none_or(|t| t.elapsed() >= STATUS_REQUEST_EVERY) {
            *last = Some(std::time::Instant::now());
            let topic = topics::status(self.prefix(), self.device());
            let birth = status::birth(&self.ctx, connected_at);
            let _ = client.try_publish(topic, QoS::AtLeastOnce, true, birth);
        }
        let _ = client.try_ack(p);
    }

    /// Queues an incoming message for handling, or refuses it when the inbox is full.
    fn receive(&self, client: &AsyncClient, p: Publish, inbox: &mut Inbox) {
        if inbox.bytes + p.payload.len() > INBOX_BYTES {
            warn!(topic = %p.topic, "Command dropped: too many waiting");
            if let Some(name) = topics::command_name(self.prefix(), self.device(), &p.topic) {
                let body = failure(
                    Authenticator::correlation_id(&p.payload),
                    name,
                    "busy",
                    "too many commands waiting; send it again later".into(),
                    None,
                );
                let topic = topics::command_result(self.prefix(), self.device(), name);
                let _ = client.try_publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&body).unwrap_or_default(),
                );
            }
            let _ = client.try_ack(&p);
            return;
        }
        inbox.bytes += p.payload.len();
        inbox.queue.push_back(p);
    }

    /// Subscribes to this device's update topics and tells senders of pending transfers where
    /// they stand.
    fn start_updates(&self, client: &AsyncClient) -> Result<(), String> {
        let Some(ota) = self.ctx.ota.as_ref().filter(|o| o.enabled()) else {
            return Ok(());
        };
        for filter in topic::device_filters(self.prefix(), self.device()) {
            client
                .try_subscribe(filter, QoS::AtLeastOnce)
                .map_err(|e| format!("cannot subscribe: {e}"))?;
        }
        for p in ota.pending() {
            let body = serde_json::to_vec(&p).unwrap_or_default();
            let topic = topic::progress(self.prefix(), self.device(), &p.transfer);
            client
                .try_publish(topic, QoS::AtLeastOnce, false, body)
                .map_err(|e| format!("cannot publish transfer progress: {e}"))?;
        }
        Ok(())
    }

    /// The publish of a progress message.
    fn progress_request<'c>(
        &self,
        client: &'c AsyncClient,
        p: &Progress,
    ) -> impl std::future::Future<Output = Result<(), rumqttc::ClientError>> + 'c {
        let topic = topic::progress(self.prefix(), self.device(), &p.transfer);
        let body = serde_json::to_vec(p).unwrap_or_default();
        client.publish(topic, QoS::AtLeastOnce, false, body)
    }

    /// Handles one message of a model transfer and answers on its progress topic.
    async fn update(&self, incoming: topic::Incoming<'_>, payload: Vec<u8>) -> Option<Progress> {
        let ota = Arc::clone(self.ctx.ota.as_ref().filter(|o| o.enabled())?);
        match incoming {
            topic::Incoming::Manifest(transfer) => {
                let transfer = transfer.to_string();
                let auth = Arc::clone(&self.auth);
                let max = self.remote.max_message_bytes;
                let progress = tokio::task::spawn_blocking(move || {
                    let checked = authenticate(&auth, MANIFEST_COMMAND, &payload, max);
                    let refused = |code: &str, reason: String| {
                        warn!(transfer, code, reason, "Model manifest refused");
                        Progress::new(&transfer, None, State::Rejected).because(code, reason)
                    };
                    let command = match checked {
                        Ok(c) => c,
                        Err(r) => return refused(r.code(), r.to_string()),
                    };
                    let manifest: Manifest = match serde_json::from_value(command.args) {
                        Ok(m) => m,
                        Err(e) => return refused("malformed", format!("manifest: {e}")),
                    };
                    if manifest.transfer != transfer {
                        return refused(
                            "wrong_transfer",
                            format!(
                                "manifest of transfer \"{}\" arrived on the topic of \"{transfer}\"",
                                manifest.transfer
                            ),
                        );
                    }
                    ota.manifest(manifest)
                })
                .await;
                progress.ok()
            }
            topic::Incoming::Chunk(transfer, n) => {
                let (transfer, n) = (transfer.to_string(), n.to_string());
                tokio::task::spawn_blocking(move || ota.chunk(&transfer, &n, &payload))
                    .await
                    .ok()
                    .flatten()
            }
            topic::Incoming::End(transfer) => {
                let transfer = transfer.to_string();
                tokio::task::spawn_blocking(move || ota.end(&transfer))
                    .await
                    .ok()
            }
        }
    }

    /// Handles one message: runs the command, publishes the result, then acknowledges it.
    async fn command(
        &self,
        client: &AsyncClient,
        p: Publish,
        conn: &mut Connection,
        inbox: &mut Inbox,
    ) {
        if let Some(incoming) = topic::parse(self.prefix(), self.device(), &p.topic) {
            if let Some(progress) = self.update(incoming, p.payload.to_vec()).await {
                let request = self.progress_request(client, &progress);
                self.send(client, request, conn, inbox).await;
            }
            self.send(client, client.ack(&p), conn, inbox).await;
            return;
        }
        let Some(name) = topics::command_name(self.prefix(), self.device(), &p.topic) else {
            // The subscription only matches this device's commands; anything else is not
            // acted on.
            debug!(topic = %p.topic, "Message outside this device's command topics ignored");
            self.send(client, client.ack(&p), conn, inbox).await;
            return;
        };
        let name = name.to_string();
        let (body, after) = dispatch::handle(
            &self.ctx,
            &self.auth,
            self.remote.max_command_bytes,
            &name,
            p.payload.to_vec(),
        )
        .await;
        let topic = topics::command_result(self.prefix(), self.device(), &name);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        if !self
            .send(
                client,
                client.publish(topic, QoS::AtLeastOnce, false, bytes),
                conn,
                inbox,
            )
            .await
        {
            warn!(command = %name, "Command result not sent: the connection ended");
        }
        self.send(client, client.ack(&p), conn, inbox).await;
        if after == After::Reload {
            if let Some(reload) = &self.ctx.reload {
                info!("New configuration written by command; reloading");
                reload.notify_one();
            }
        }
    }

    /// Waits for a request to be queued to rumqttc while still taking events: commands that
    /// arrive meanwhile go to the inbox (or are refused when it is full). False if the
    /// connection ended; its error is then the connection's next event.
    async fn send(
        &self,
        client: &AsyncClient,
        request: impl std::future::Future<Output = Result<(), rumqttc::ClientError>>,
        conn: &mut Connection,
        inbox: &mut Inbox,
    ) -> bool {
        let mut on_event = |event: Event| {
            if let Event::Incoming(Packet::Publish(p)) = event {
                self.receive(client, p, inbox);
            }
        };
        match conn.request(request, Some(&mut on_event)).await {
            Ok(()) => true,
            Err(reason) => {
                inbox.lost = Some(reason);
                false
            }
        }
    }
}

/// Commands received and not yet handled, and why the connection ended if it did meanwhile (no
/// further command is run then: its result could not be sent).
#[derive(Default)]
struct Inbox {
    queue: std::collections::VecDeque<Publish>,
    bytes: usize,
    lost: Option<String>,
}
