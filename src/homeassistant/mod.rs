//! Home Assistant MQTT discovery: the device and its sensors appear in Home Assistant as entities
//! (label, score, frame rate) without any configuration there.
//!
//! It runs on a connection of its own (client id `{client_id}-ha`). On every connection it
//! publishes the retained configs, then each sensor's retained state (see [`state`]), and it
//! publishes the configs again whenever Home Assistant announces `online` on its status topic
//! (after a restart it may have lost them). It also subscribes to every config under this
//! device's node id: a retained config of an entity no longer configured (a sensor dropped by a
//! reload, even one made while the broker was away) is answered with an empty retained config,
//! which removes the entity.

mod discovery;
mod state;

use crate::config::{BrokerAddress, Config, HomeAssistantConfig, MqttConfig};
use crate::mqtt::session::{Backoff, Connection, OnError, SessionEnd};
use crate::mqtt::{options, topics};
use crate::pipeline::SensorStats;
use discovery::{Discovery, EntityConfig, SensorEntities};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use state::SensorState;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Events from the event loop (connection, incoming messages, errors; the rest are dropped
/// there). Bounded; the event loop waits while it is full.
const EVENT_QUEUE: usize = 64;
/// Requests queued to rumqttc. Configs wait for room; a state that finds no room is left
/// unpublished until the next tick.
const REQUEST_QUEUE: usize = 64;
/// At shutdown, how long to wait for DISCONNECT to be written.
const DISCONNECT_WAIT: Duration = Duration::from_millis(500);

/// The discovery task of one daemon generation.
pub struct HomeAssistant {
    config: HomeAssistantConfig,
    mqtt: MqttConfig,
    address: BrokerAddress,
    client_id: String,
    discovery: Discovery,
    states: Vec<SensorState>,
    shutdown: CancellationToken,
}

impl HomeAssistant {
    /// The task; `None` unless `[homeassistant]` is enabled (validation made sure `[mqtt]` is
    /// there).
    pub fn new(
        config: &Config,
        sensor_stats: &[(Arc<str>, Arc<SensorStats>)],
        shutdown: CancellationToken,
    ) -> Option<Result<Self, String>> {
        let ha = config.homeassistant.clone().filter(|h| h.enabled)?;
        let mqtt = config.mqtt.clone()?;
        let address = match BrokerAddress::parse(&mqtt.broker) {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        let device = config.device.id.clone();
        let prefix = mqtt.topic_prefix.clone();
        let state_topic = |sensor: &str| topics::sensor_state(&prefix, &device, sensor);
        let discovery = Discovery {
            prefix: ha.discovery_prefix.clone(),
            device: device.clone(),
            status_topic: topics::status(&prefix, &device),
            sensors: config
                .sensors
                .iter()
                .map(|s| SensorEntities {
                    sensor: s.id.clone(),
                    model: s.model.clone(),
                    state_topic: state_topic(&s.id),
                })
                .collect(),
        };
        let states = sensor_stats
            .iter()
            .map(|(id, stats)| SensorState::new(Arc::clone(id), state_topic(id), Arc::clone(stats)))
            .collect();
        let base = mqtt.client_id.clone().unwrap_or_else(|| device.clone());
        Some(Ok(Self {
            config: ha,
            mqtt,
            address,
            client_id: format!("{base}-ha"),
            discovery,
            states,
            shutdown,
        }))
    }

    /// Connects, serves, reconnects with exponential backoff, until shutdown.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.mqtt.reconnect_min_ms),
            Duration::from_millis(self.mqtt.reconnect_max_ms),
        );
        loop {
            let end = self.session().await;
            if !backoff
                .after(end, "Home Assistant", &self.mqtt.broker, &self.shutdown)
                .await
            {
                break;
            }
        }
        debug!("Home Assistant discovery stopped");
    }

    /// One connection, from CONNECT to its loss or shutdown.
    async fn session(&mut self) -> SessionEnd {
        let mut options = options::build(&self.mqtt, &self.address, self.client_id.clone());
        options.set_clean_session(true);
        options.set_max_packet_size(self.mqtt.max_packet_bytes, self.mqtt.max_packet_bytes);
        let mut conn = Connection::open(
            options,
            REQUEST_QUEUE,
            EVENT_QUEUE,
            |e| matches!(e, Event::Incoming(Packet::Publish(_))),
            OnError::Stop,
        );
        let client = conn.client().clone();
        let configs = self.discovery.configs();
        let current: HashSet<&str> = configs.iter().map(|c| c.topic.as_str()).collect();
        let birth_topic = self.discovery.birth_topic();
        let period = Duration::from_millis(self.config.state_interval_ms);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connected = false;
        self.states.iter_mut().for_each(SensorState::reset);

        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    conn.close(DISCONNECT_WAIT).await;
                    return SessionEnd::Shutdown;
                }
                event = conn.next() => match event {
                    None => break SessionEnd::Lost { connected, reason: "event loop ended".into() },
                    Some(Err(e)) => break SessionEnd::Lost { connected, reason: e.to_string() },
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        connected = true;
                        info!(broker = %self.mqtt.broker, entities = configs.len(), "Home Assistant discovery connected");
                        let filters = [birth_topic.clone(), self.discovery.config_filter()]
                            .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtMostOnce));
                        if let Err(e) = client.try_subscribe_many(filters) {
                            break SessionEnd::Lost { connected, reason: format!("cannot subscribe: {e}") };
                        }
                        if let Err(reason) = publish_configs(&client, &mut conn, &configs).await {
                            break SessionEnd::Lost { connected, reason };
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == birth_topic => {
                        if p.payload.as_ref() == b"online" {
                            debug!("Home Assistant is online: discovery published again");
                            if let Err(reason) = publish_configs(&client, &mut conn, &configs).await {
                                break SessionEnd::Lost { connected, reason };
                            }
                            self.publish_states(&client, true);
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => remove_stale(&client, &p, &current),
                    Some(Ok(_)) => {}
                },
                _ = tick.tick(), if connected => self.publish_states(&client, false),
            }
        }
    }

    /// Publishes the states that changed (all with `force`), retained.
    fn publish_states(&mut self, client: &AsyncClient, force: bool) {
        for state in &mut self.states {
            let Some(body) = state.changed(force) else {
                continue;
            };
            match client.try_publish(&state.topic, QoS::AtMostOnce, true, body.clone()) {
                Ok(()) => state.published(body),
                Err(e) => {
                    debug!(sensor = %state.sensor, error = %e, "State skipped: request queue full")
                }
            }
        }
    }
}

/// Publishes every config, retained, waiting for room in the request queue.
async fn publish_configs(
    client: &AsyncClient,
    conn: &mut Connection,
    configs: &[EntityConfig],
) -> Result<(), String> {
    for c in configs {
        let request = client.publish(&c.topic, QoS::AtLeastOnce, true, c.payload.clone());
        conn.request(request, None).await?;
    }
    Ok(())
}

/// Removes the entity of a retained config that is not among `current` (an empty retained
/// config is Home Assistant's removal). Empty configs (removals, ours or another's) are left.
fn remove_stale(client: &AsyncClient, p: &Publish, current: &HashSet<&str>) {
    if p.payload.is_empty() || current.contains(p.topic.as_str()) {
        return;
    }
    info!(topic = %p.topic, "Home Assistant entity no longer configured: removed");
    if let Err(e) = client.try_publish(&p.topic, QoS::AtLeastOnce, true, Vec::new()) {
        warn!(topic = %p.topic, error = %e, "Stale Home Assistant entity not removed");
    }
}
