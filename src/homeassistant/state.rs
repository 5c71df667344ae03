//! The retained state of each sensor that the Home Assistant entities show: its newest result in
//! brief and its frame rate. A state is published when it changed, at most once per interval.

use crate::pipeline::SensorStats;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The frame rate is the captured frames over at least this long, so that it does not flicker
/// with every state.
const FPS_WINDOW: Duration = Duration::from_secs(5);

/// One sensor's state as last published, and what its frame rate is measured from.
pub struct SensorState {
    pub sensor: Arc<str>,
    pub topic: String,
    stats: Arc<SensorStats>,
    window: (Instant, u64),
    fps: Option<f64>,
    published: Option<Vec<u8>>,
}

impl SensorState {
    pub fn new(sensor: Arc<str>, topic: String, stats: Arc<SensorStats>) -> Self {
        let captured = stats.captured.load(Ordering::Relaxed);
        SensorState {
            sensor,
            topic,
            stats,
            window: (Instant::now(), captured),
            fps: None,
            published: None,
        }
    }

    /// The state now, if it differs from the one last published (or `force`).
    pub fn changed(&mut self, force: bool) -> Option<Vec<u8>> {
        self.measure(Instant::now());
        let body = serde_json::to_vec(&self.state()).unwrap_or_default();
        if !force && self.published.as_ref() == Some(&body) {
            return None;
        }
        Some(body)
    }

    /// Records that `body` went out.
    pub fn published(&mut self, body: Vec<u8>) {
        self.published = Some(body);
    }

    /// Forgets what went out (a new connection must publish again).
    pub fn reset(&mut self) {
        self.published = None;
    }

    fn measure(&mut self, now: Instant) {
        let (since, before) = self.window;
        let elapsed = now.duration_since(since);
        if elapsed >= FPS_WINDOW {
            let captured = self.stats.captured.load(Ordering::Relaxed);
            let rate = captured.saturating_sub(before) as f64 / elapsed.as_secs_f64();
            self.fps = Some((rate * 10.0).round() / 10.0);
            self.window = (now, captured);
        }
    }

    fn state(&self) -> Value {
        let latest = self.stats.latest.get();
        let mut state = json!({
            "label": latest.as_ref().and_then(|l| l.label.clone()),
            "score": latest.as_ref().and_then(|l| l.score).map(|s| (s as f64 * 1e4).round() / 1e4),
            "fps": self.fps,
        });
        if let (Some(l), Some(map)) = (latest, state.as_object_mut()) {
            map.insert("model".into(), l.model.into());
            map.insert("model_version".into(), l.model_version.into());
            map.insert("captured_at".into(), l.captured_at.into());
            if let Some(boxes) = l.boxes {
                map.insert("boxes".into(), boxes.into());
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LatestResult;
    use crate::prediction::{ClassScore, InferenceResult};

    #[test]
    fn a_state_goes_out_when_it_changes_and_the_rate_covers_a_window() {
        let stats = Arc::new(SensorStats::default());
        let mut s = SensorState::new("cam".into(), "t".into(), Arc::clone(&stats));
        let first = s.changed(false).unwrap();
        let v: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(v, json!({"label": null, "score": null, "fps": null}));
        s.published(first);
        assert_eq!(s.changed(false), None);
        assert!(s.changed(true).is_some());

        let result = InferenceResult::Classes {
            top: vec![ClassScore {
                label: "red".into(),
                index: 0,
                score: 0.87654,
            }],
        };
        stats
            .latest
            .set(LatestResult::new(&result, "colour", "v2", "t0".into()));
        let v: Value = serde_json::from_slice(&s.changed(false).unwrap()).unwrap();
        assert_eq!(
            (v["label"].as_str(), v["score"].as_f64()),
            (Some("red"), Some(0.8765))
        );
        assert_eq!(v["model_version"], "v2");

        stats.captured.store(50, Ordering::Relaxed);
        let start = s.window.0;
        s.measure(start + Duration::from_secs(10));
        assert_eq!(s.fps, Some(5.0));
    }
}
