//! The topic tree: `{prefix}/{device}/...`.

/// Topic of one sensor's predictions.
pub fn predictions(prefix: &str, device: &str, sensor: &str) -> String {
    format!("{prefix}/{device}/predictions/{sensor}")
}

/// Filter matching every sensor's predictions of a device.
pub fn all_predictions(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/predictions/+")
}
