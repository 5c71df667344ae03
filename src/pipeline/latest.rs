//! The newest result of each sensor, for views that show a state rather than a stream (Home
//! Assistant's entities). One slot per sensor, overwritten by every stored prediction: newest
//! wins, so it costs the same at any frame rate and however long nobody reads it.

use crate::prediction::InferenceResult;
use serde::Serialize;
use std::sync::Mutex;

/// What a sensor's newest prediction said, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestResult {
    /// Best class or best box's label; `None` when nothing passed the threshold, or for raw
    /// outputs.
    pub label: Option<String>,
    /// Its score.
    pub score: Option<f32>,
    /// Boxes found, for detectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boxes: Option<usize>,
    /// Model id.
    pub model: String,
    /// Model version that made it.
    pub model_version: String,
    /// When its frame was captured (RFC 3339).
    pub captured_at: String,
}

impl LatestResult {
    /// The brief of `result`, made by `model` at `version` from a frame captured at `captured_at`.
    pub fn new(result: &InferenceResult, model: &str, version: &str, captured_at: String) -> Self {
        let (label, score, boxes) = match result {
            InferenceResult::Classes { top } => {
                let best = top.first();
                (best.map(|b| b.label.clone()), best.map(|b| b.score), None)
            }
            InferenceResult::Boxes { boxes } => {
                let best = boxes.first();
                (
                    best.map(|b| b.label.clone()),
                    best.map(|b| b.score),
                    Some(boxes.len()),
                )
            }
            InferenceResult::Raw { .. } => (None, None, None),
        };
        LatestResult {
            label,
            score,
            boxes,
            model: model.to_string(),
            model_version: version.to_string(),
            captured_at,
        }
    }
}

/// One sensor's slot.
#[derive(Debug, Default)]
pub struct LatestSlot(Mutex<Option<LatestResult>>);

impl LatestSlot {
    /// Replaces what the slot holds.
    pub fn set(&self, result: LatestResult) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    }

    /// A copy of what it holds; `None` before the first prediction.
    pub fn get(&self) -> Option<LatestResult> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prediction::ClassScore;

    #[test]
    fn the_newest_result_wins_and_raw_outputs_have_no_label() {
        let slot = LatestSlot::default();
        assert_eq!(slot.get(), None);
        let classes = |label: &str, score| InferenceResult::Classes {
            top: vec![ClassScore {
                label: label.into(),
                index: 0,
                score,
            }],
        };
        slot.set(LatestResult::new(
            &classes("red", 0.5),
            "m",
            "1",
            "t0".into(),
        ));
        slot.set(LatestResult::new(
            &classes("blue", 0.9),
            "m",
            "2",
            "t1".into(),
        ));
        let got = slot.get().unwrap();
        assert_eq!(
            (got.label.as_deref(), got.score, got.model_version.as_str()),
            (Some("blue"), Some(0.9), "2")
        );
        let raw = InferenceResult::Raw {
            outputs: Default::default(),
        };
        assert_eq!(LatestResult::new(&raw, "m", "1", "t".into()).label, None);
    }
}
