//! The fleet as its retained messages show it: each device's status (birth message or last
//! will) and its last telemetry, kept up to date from `{prefix}/+/status` and
//! `{prefix}/+/telemetry`.
//!
//! Messages are read leniently (unknown fields ignored, missing ones empty), so that a fleet of
//! mixed daemon versions can be shown.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One device as the operator sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct DeviceView {
    /// Device id.
    pub device: String,
    /// Whether its status says it is online.
    pub online: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Daemon version.
    pub version: Option<String>,
    /// When its last management connection was made (online since, when online).
    pub connected_at: Option<String>,
    /// When it stopped cleanly; `None` when online or when its last will said it was lost.
    pub stopped_at: Option<String>,
    /// Why it is offline.
    pub reason: Option<String>,
    /// Its models as its status lists them.
    pub models: Vec<ModelView>,
    /// Records waiting in its outbox, from the newer of status and telemetry.
    pub backlog: Option<u64>,
    /// Age of its oldest waiting record then, in seconds.
    pub oldest_age_secs: Option<u64>,
    /// When its last telemetry was taken.
    pub telemetry_at: Option<String>,
    /// Shadow runs in its last telemetry, by model.
    pub shadow: BTreeMap<String, ShadowView>,
}

/// A model in a status message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct ModelView {
    /// Model id.
    pub id: String,
    /// Serving version.
    pub version: String,
    /// Its label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Backend that runs it.
    pub backend: String,
    /// On trial.
    pub trial: bool,
    /// Version in its shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
    /// Its last update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateView>,
}

/// The last update of a model (`committed`, `rolled_back`, ...).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct UpdateView {
    /// What happened.
    pub what: String,
    /// To which version.
    pub version: String,
    /// Reason code of a rollback.
    pub code: Option<String>,
    /// Reason in words.
    pub reason: Option<String>,
}

/// A shadow run in telemetry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct ShadowView {
    /// Candidate version.
    pub version: String,
    /// Frames both ran on.
    pub frames: u64,
    /// `agreed / frames`.
    pub agreement: Option<f64>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct StatusMessage {
    online: bool,
    labels: BTreeMap<String, String>,
    version: Option<String>,
    connected_at: Option<String>,
    at: Option<String>,
    reason: Option<String>,
    models: Vec<ModelView>,
    outbox: Option<OutboxFigures>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TelemetryMessage {
    at: Option<String>,
    outbox: Option<OutboxFigures>,
    shadow: BTreeMap<String, ShadowView>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutboxFigures {
    records: u64,
    oldest_age_secs: Option<u64>,
}

/// Every device heard of under one topic prefix.
#[derive(Debug, Default)]
pub(super) struct Directory {
    prefix: String,
    devices: BTreeMap<String, DeviceView>,
}

/// What a message was.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    /// A device's status.
    Status(String),
    /// A device's telemetry.
    Telemetry(String),
    /// Not a status or telemetry message, or unreadable.
    Other,
}

impl Directory {
    /// An empty directory of the devices under `prefix`.
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            devices: BTreeMap::new(),
        }
    }

    /// The subscriptions that fill it.
    pub(super) fn filters(&self) -> [String; 2] {
        [
            crate::mqtt::topics::status(&self.prefix, "+"),
            crate::mqtt::topics::telemetry(&self.prefix, "+"),
        ]
    }

    /// The devices, by id.
    pub(super) fn devices(&self) -> &BTreeMap<String, DeviceView> {
        &self.devices
    }

    /// A device.
    pub(super) fn get(&self, device: &str) -> Option<&DeviceView> {
        self.devices.get(device)
    }

    /// Takes in a message; an empty retained status removes the device.
    pub(super) fn update(&mut self, topic: &str, payload: &[u8]) -> Heard {
        let Some((device, kind)) = topic
            .strip_prefix(&self.prefix)
            .and_then(|t| t.strip_prefix('/'))
            .and_then(|t| t.split_once('/'))
        else {
            return Heard::Other;
        };
        if device.is_empty() || kind.contains('/') {
            return Heard::Other;
        }
        let device = device.to_string();
        match kind {
            "status" if payload.is_empty() => {
                self.devices.remove(&device);
                Heard::Status(device)
            }
            "status" => {
                let Ok(s) = serde_json::from_slice::<StatusMessage>(payload) else {
                    return Heard::Other;
                };
                let view = self.entry(&device);
                view.online = s.online;
                view.labels = s.labels;
                view.version = s.version.or(view.version.take());
                view.connected_at = s.connected_at;
                view.stopped_at = s.at;
                view.reason = s.reason;
                if s.online || !s.models.is_empty() {
                    view.models = s.models;
                }
                if let (Some(o), None) = (s.outbox, &view.telemetry_at) {
                    view.backlog = Some(o.records);
                    view.oldest_age_secs = o.oldest_age_secs;
                }
                Heard::Status(device)
            }
            "telemetry" => {
                let Ok(t) = serde_json::from_slice::<TelemetryMessage>(payload) else {
                    return Heard::Other;
                };
                let view = self.entry(&device);
                view.telemetry_at = t.at;
                if let Some(o) = t.outbox {
                    view.backlog = Some(o.records);
                    view.oldest_age_secs = o.oldest_age_secs;
                }
                view.shadow = t.shadow;
                Heard::Telemetry(device)
            }
            _ => Heard::Other,
        }
    }

    fn entry(&mut self, device: &str) -> &mut DeviceView {
        self.devices
            .entry(device.to_string())
            .or_insert_with(|| DeviceView {
                device: device.to_string(),
                ..DeviceView::default()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_telemetry_make_one_view_per_device() {
        let mut d = Directory::new("fleet");
        let birth = br#"{"online":true,"device":"d1","labels":{"site":"a"},"version":"0.9.0",
            "connected_at":"2026-12-04T10:00:00Z","models":[{"id":"m","version":"abc",
            "backend":"tract","trial":false,"path":"/x"}],"outbox":{"records":7}}"#;
        assert_eq!(
            d.update("fleet/d1/status", birth),
            Heard::Status("d1".into())
        );
        let v = d.get("d1").unwrap();
        assert!(v.online);
        assert_eq!(v.labels["site"], "a");
        assert_eq!(v.models[0].version, "abc");
        assert_eq!(v.backlog, Some(7));
        let telemetry =
            br#"{"at":"2026-12-04T10:01:00Z","outbox":{"records":3,"oldest_age_secs":9},
            "shadow":{"m":{"version":"def","frames":50,"agreed":49,"agreement":0.98}}}"#;
        d.update("fleet/d1/telemetry", telemetry);
        let v = d.get("d1").unwrap();
        assert_eq!((v.backlog, v.oldest_age_secs), (Some(3), Some(9)));
        assert_eq!(v.shadow["m"].frames, 50);
        // The last will keeps what the birth message said about models and version.
        let will =
            br#"{"online":false,"device":"d1","labels":{"site":"a"},"reason":"connection lost",
            "connected_at":"2026-12-04T10:00:00Z"}"#;
        d.update("fleet/d1/status", will);
        let v = d.get("d1").unwrap();
        assert!(!v.online);
        assert_eq!(v.reason.as_deref(), Some("connection lost"));
        assert_eq!(v.models.len(), 1);
        assert_eq!(v.version.as_deref(), Some("0.9.0"));
        d.update("fleet/d1/status", b"");
        assert!(d.get("d1").is_none());
    }

    #[test]
    fn other_topics_and_bad_payloads_are_ignored() {
        let mut d = Directory::new("fleet");
        assert_eq!(d.update("fleet/d1/predictions/s", b"{}"), Heard::Other);
        assert_eq!(d.update("other/d1/status", b"{}"), Heard::Other);
        assert_eq!(d.update("fleet/d1/status", b"not json"), Heard::Other);
        assert_eq!(d.update("fleet//status", b"{}"), Heard::Other);
        assert!(d.devices().is_empty());
    }
}
