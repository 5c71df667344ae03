//! The management connection: status with a last will, telemetry, commands and their results.

use super::auth::{Authenticator, Policy, Rejection};
use super::commands::{self, After};
use super::telemetry::Sampler;
use super::{status, unix_now, Context};
use crate::config::{BrokerAddress, MqttConfig, RemoteConfig};
use crate::mqtt::{options, topics};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Events from the event loop task (connection, incoming messages, errors; the rest are not
/// forwarded). Bounded, and the event loop waits when it is full. Commands are acknowledged only
/// once handled, so the broker's in-flight window (mosquitto: 20 by default) bounds how many
/// incoming messages are outstanding: with a window below this size the event loop never waits.
const EVENT_QUEUE: usize = 64;
/// Requests queued to rumqttc (results, acknowledgements, status, telemetry). When it is full a
/// result waits for room, up to `RESULT_WAIT`; telemetry is skipped.
const REQUEST_QUEUE: usize = 64;
/// Longest a command result waits for room in the request queue before it is dropped (and
/// logged), so that a broker with an unbounded in-flight window cannot wedge the connection.
const RESULT_WAIT: Duration = Duration::from_secs(5);
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
}

/// How one connection ended.
enum SessionEnd {
    Shutdown,
    Lost { connected: bool, reason: String },
}

impl Control {
    /// The management task; `None` when the config has no `[remote]` (or no `[mqtt]`).
    pub fn new(ctx: Arc<Context>, shutdown: CancellationToken) -> Option<Result<Self, String>> {
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
        }))
    }

    fn prefix(&self) -> &str {
        &self.mqtt.topic_prefix
    }

    fn device(&self) -> &str {
        &self.ctx.config.device.id
    }

    /// Connects, serves, reconnects with exponential backoff, until shutdown.
    pub async fn run(self) {
        let min = Duration::from_millis(self.mqtt.reconnect_min_ms);
        let max = Duration::from_millis(self.mqtt.reconnect_max_ms);
        let mut delay = min;
        let mut sampler = Sampler::new(&self.ctx);
        loop {
            match self.session(&mut sampler).await {
                SessionEnd::Shutdown => break,
                SessionEnd::Lost { connected, reason } => {
                    if connected {
                        delay = min;
                        warn!(broker = %self.mqtt.broker, reason, "Management connection lost");
                    } else {
                        debug!(broker = %self.mqtt.broker, reason, "Management connection failed");
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(max);
        }
        debug!("Management stopped");
    }

    fn options(&self) -> rumqttc::MqttOptions {
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
            status::offline(self.device(), "connection lost"),
            QoS::AtLeastOnce,
            true,
        ));
        opts
    }

    /// One connection, from CONNECT to its loss or shutdown.
    async fn session(&self, sampler: &mut Sampler) -> SessionEnd {
        let (client, eventloop) = AsyncClient::new(self.options(), REQUEST_QUEUE);
        let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let poller = tokio::spawn(poll_events(eventloop, tx));
        let mut connected = false;
        let period = Duration::from_secs(self.remote.telemetry_interval_secs);
        let mut telemetry = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        telemetry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let status_topic = topics::status(self.prefix(), self.device());

        let end = loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    if connected {
                        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, status::offline(self.device(), "stopped"));
                    }
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(DISCONNECT_WAIT, async {
                        while let Some(Ok(ev)) = events.recv().await {
                            if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    })
                    .await;
                    break SessionEnd::Shutdown;
                }
                event = events.recv() => match event {
                    None => break SessionEnd::Lost { connected, reason: "event loop ended".into() },
                    Some(Err(e)) => break SessionEnd::Lost { connected, reason: e.to_string() },
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        connected = true;
                        info!(broker = %self.mqtt.broker, "Management connected");
                        let filter = topics::all_commands(self.prefix(), self.device());
                        if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                            break SessionEnd::Lost { connected, reason: format!("cannot subscribe: {e}") };
                        }
                        if let Err(e) = client.try_publish(&status_topic, QoS::AtLeastOnce, true, status::birth(&self.ctx)) {
                            break SessionEnd::Lost { connected, reason: format!("cannot publish status: {e}") };
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        let Some(name) = topics::command_name(self.prefix(), self.device(), &p.topic) else {
                            // The subscription only matches this device's commands; anything
                            // else is not acted on.
                            debug!(topic = %p.topic, "Message outside this device's command topics ignored");
                            let _ = client.try_ack(&p);
                            continue;
                        };
                        let name = name.to_string();
                        let after = self.handle(&client, &name, p.payload.to_vec()).await;
                        if tokio::time::timeout(RESULT_WAIT, client.ack(&p)).await.is_err() {
                            debug!("Command acknowledgement not queued");
                        }
                        if after == After::Reload {
                            if let Some(reload) = &self.ctx.reload {
                                info!("New configuration written by command; reloading");
                                reload.notify_one();
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = telemetry.tick(), if connected => {
                    let body = serde_json::to_vec(&sampler.sample(&self.ctx)).unwrap_or_default();
                    let topic = topics::telemetry(self.prefix(), self.device());
                    if let Err(e) = client.try_publish(topic, QoS::AtMostOnce, false, body) {
                        debug!(error = %e, "Telemetry skipped: request queue full");
                    }
                }
            }
        };
        poller.abort();
        end
    }

    /// Authenticates and runs one command, and publishes its result.
    async fn handle(&self, client: &AsyncClient, name: &str, payload: Vec<u8>) -> After {
        let correlation = Authenticator::correlation_id(&payload);
        let auth = Arc::clone(&self.auth);
        let topic_name = name.to_string();
        // Checking may write the high-water file (fsync): off the reactor.
        let checked = tokio::task::spawn_blocking(move || {
            let mut guard = auth.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Ok(a) => a.check(&topic_name, &payload, unix_now()),
                Err(reason) => Err(Rejection::Storage(reason.clone())),
            }
        })
        .await
        .unwrap_or_else(|e| Err(Rejection::Storage(e.to_string())));
        let (body, after) = match checked {
            Err(rejection) => {
                warn!(command = name, reason = rejection.code(), detail = %rejection, "Command refused");
                (
                    failure(
                        correlation,
                        name,
                        rejection.code(),
                        rejection.to_string(),
                        None,
                    ),
                    After::Nothing,
                )
            }
            Ok(command) => {
                let id = Some(command.id.clone());
                match commands::execute(&self.ctx, &command).await {
                    Ok((result, after)) => {
                        info!(command = name, id = %command.id, seq = command.seq, "Command done");
                        (
                            json!({ "id": id, "command": name, "ok": true, "result": result }),
                            after,
                        )
                    }
                    Err(f) => {
                        warn!(command = name, id = %command.id, reason = f.code, detail = %f.message, "Command failed");
                        (
                            failure(id, name, f.code, f.message, f.details),
                            After::Nothing,
                        )
                    }
                }
            }
        };
        let topic = topics::command_result(self.prefix(), self.device(), name);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let sent = tokio::time::timeout(
            RESULT_WAIT,
            client.publish(topic, QoS::AtLeastOnce, false, bytes),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            warn!(
                command = name,
                "Command result not sent: the connection is not taking requests"
            );
        }
        after
    }
}

fn failure(
    id: Option<String>,
    name: &str,
    code: &str,
    message: String,
    details: Option<Value>,
) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = details {
        error["details"] = d;
    }
    json!({ "id": id, "command": name, "ok": false, "error": error })
}

/// Drives the event loop, forwarding the events the session acts on; stops at the first error so
/// the connection is rebuilt. Acknowledgements and other outgoing events are not forwarded, so
/// they cannot fill the queue and stall the event loop.
async fn poll_events(mut eventloop: EventLoop, tx: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        let wanted = matches!(
            event,
            Err(_)
                | Ok(Event::Incoming(Packet::ConnAck(_)))
                | Ok(Event::Incoming(Packet::Publish(_)))
                | Ok(Event::Outgoing(Outgoing::Disconnect))
        );
        if (wanted && tx.send(event).await.is_err()) || failed {
            break;
        }
    }
}
