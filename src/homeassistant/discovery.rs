//! Home Assistant MQTT discovery payloads: per sensor a label, a score and a frame-rate entity,
//! all of one device, available while the device's retained status says it is online.
//!
//! The entities read the sensor's retained state topic (see [`super::state`]), not the
//! prediction stream: predictions come in batches (JSON arrays) and, after an outage, as a
//! backlog oldest first that interleaves with live ones, so a template over them would show the
//! past as the present.

use crate::config::discovery_id;
use serde_json::{json, Value};

/// What Home Assistant should know of one sensor.
#[derive(Debug, Clone)]
pub struct SensorEntities {
    /// Sensor id from the config.
    pub sensor: String,
    /// Model it feeds.
    pub model: String,
    /// Its state topic.
    pub state_topic: String,
}

/// Everything discovery publishes for one device.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// The device id.
    pub device: String,
    /// The device's retained status topic: availability.
    pub status_topic: String,
    /// Its sensors.
    pub sensors: Vec<SensorEntities>,
}

/// One retained config message.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityConfig {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The entities of each sensor: the key of the state each shows (also its object id suffix), and
/// its name.
const ENTITIES: [(&str, &str); 3] = [
    ("label", "label"),
    ("score", "score"),
    ("fps", "frame rate"),
];

impl Discovery {
    /// Home Assistant's own status topic: `online` there asks for discovery again.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// The node id that groups this device's configs under the discovery prefix.
    fn node_id(&self) -> String {
        format!("edgeinfer_{}", discovery_id(&self.device))
    }

    /// Filter matching every config this device may ever have published (any component), so
    /// that stale ones, of sensors no longer configured, can be found and removed.
    pub fn config_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.prefix, self.node_id())
    }

    /// The configs of every entity, in a stable order.
    pub fn configs(&self) -> Vec<EntityConfig> {
        let mut configs = Vec::new();
        for sensor in &self.sensors {
            for (what, name) in ENTITIES {
                let object = format!("{}_{what}", discovery_id(&sensor.sensor));
                let payload = self.entity(sensor, what, name, &object);
                configs.push(EntityConfig {
                    topic: format!("{}/sensor/{}/{object}/config", self.prefix, self.node_id()),
                    payload: serde_json::to_vec(&payload).unwrap_or_default(),
                });
            }
        }
        configs
    }

    fn entity(&self, sensor: &SensorEntities, what: &str, name: &str, object: &str) -> Value {
        let mut config = json!({
            "name": format!("{} {name}", sensor.sensor),
            "unique_id": format!("{}_{object}", self.node_id()),
            "state_topic": sensor.state_topic,
            "value_template": format!("{{{{ value_json.{what} }}}}"),
            "availability_topic": self.status_topic,
            "availability_template": "{{ 'online' if value_json.online else 'offline' }}",
            "device": self.device_block(),
            "origin": {
                "name": "edgeinfer",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        });
        let extra = match what {
            "label" => json!({
                "icon": "mdi:tag-outline",
                "json_attributes_topic": sensor.state_topic,
                "json_attributes_template":
                    "{{ {'model': value_json.model, 'model_version': value_json.model_version, 'captured_at': value_json.captured_at} | tojson }}",
            }),
            "score" => json!({
                "icon": "mdi:gauge",
                "state_class": "measurement",
                "suggested_display_precision": 3,
            }),
            _ => json!({
                "icon": "mdi:speedometer",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "entity_category": "diagnostic",
            }),
        };
        if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
            config.extend(extra);
        }
        config
    }

    fn device_block(&self) -> Value {
        let mut models: Vec<&str> = self.sensors.iter().map(|s| s.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        json!({
            "identifiers": [self.node_id()],
            "name": self.device,
            "manufacturer": "edgeinfer",
            "model": format!("edgeinfer ({})", models.join(", ")),
            "sw_version": env!("CARGO_PKG_VERSION"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery() -> Discovery {
        Discovery {
            prefix: "homeassistant".into(),
            device: "barn.1".into(),
            status_topic: "edgeinfer/barn.1/status".into(),
            sensors: vec![SensorEntities {
                sensor: "cam.0".into(),
                model: "colour".into(),
                state_topic: "edgeinfer/barn.1/state/cam.0".into(),
            }],
        }
    }

    #[test]
    fn each_sensor_has_label_score_and_frame_rate_entities_of_one_device() {
        let d = discovery();
        let configs = d.configs();
        let topics: Vec<&str> = configs.iter().map(|c| c.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/edgeinfer_barn_1/cam_0_label/config",
                "homeassistant/sensor/edgeinfer_barn_1/cam_0_score/config",
                "homeassistant/sensor/edgeinfer_barn_1/cam_0_fps/config",
            ]
        );
        let label: Value = serde_json::from_slice(&configs[0].payload).unwrap();
        assert_eq!(label["unique_id"], "edgeinfer_barn_1_cam_0_label");
        assert_eq!(label["state_topic"], "edgeinfer/barn.1/state/cam.0");
        assert_eq!(label["value_template"], "{{ value_json.label }}");
        assert_eq!(label["availability_topic"], "edgeinfer/barn.1/status");
        assert_eq!(label["device"]["identifiers"][0], "edgeinfer_barn_1");
        assert_eq!(label["device"]["model"], "edgeinfer (colour)");
        assert_eq!(label["origin"]["name"], "edgeinfer");
        let fps: Value = serde_json::from_slice(&configs[2].payload).unwrap();
        assert_eq!(fps["unit_of_measurement"], "fps");
        assert_eq!(fps["value_template"], "{{ value_json.fps }}");
        // The filter covers every config of this device, of any component.
        assert_eq!(
            d.config_filter(),
            "homeassistant/+/edgeinfer_barn_1/+/config"
        );
    }
}
