//! The topic tree: `{prefix}/{device}/...`.

/// Topic of one sensor's predictions.
pub fn predictions(prefix: &str, device: &str, sensor: &str) -> String {
    format!("{prefix}/{device}/predictions/{sensor}")
}

/// Filter matching every sensor's predictions of a device.
pub fn all_predictions(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/predictions/+")
}

/// Retained brief of a sensor's newest result and frame rate, for dashboards that show a state
/// (Home Assistant's entities read it).
pub fn sensor_state(prefix: &str, device: &str, sensor: &str) -> String {
    format!("{prefix}/{device}/state/{sensor}")
}

/// Retained presence and state of a device (birth message; the last will marks it offline).
pub fn status(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/status")
}

/// Where an operator asks every device under the prefix to publish its status again (any
/// payload, not retained): for brokers on which a retained message does not reach a subscriber
/// on another node (ejabberd 23.01's cluster), and for a fresh view after a broker lost its
/// retained store.
pub fn status_request(prefix: &str) -> String {
    format!("{prefix}/_fleet/status-request")
}

/// Periodic telemetry of a device.
pub fn telemetry(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/telemetry")
}

/// A command to a device.
pub fn command(prefix: &str, device: &str, name: &str) -> String {
    format!("{prefix}/{device}/cmd/{name}")
}

/// Filter matching every command to a device (one level: results are not matched).
pub fn all_commands(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/cmd/+")
}

/// Where the answer to a command goes.
pub fn command_result(prefix: &str, device: &str, name: &str) -> String {
    format!("{prefix}/{device}/cmd/{name}/result")
}

/// The command name of a topic under `{prefix}/{device}/cmd/`, if it is one; any other device's
/// topic, or a deeper level, is `None`.
pub fn command_name<'t>(prefix: &str, device: &str, topic: &'t str) -> Option<&'t str> {
    let name = topic
        .strip_prefix(prefix)?
        .strip_prefix('/')?
        .strip_prefix(device)?
        .strip_prefix("/cmd/")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_of_this_device_are_recognised() {
        assert_eq!(command_name("p", "d1", "p/d1/cmd/ping"), Some("ping"));
        assert_eq!(command_name("p", "d1", "p/d2/cmd/ping"), None);
        assert_eq!(command_name("p", "d1", "p/d11/cmd/ping"), None);
        assert_eq!(command_name("p", "d1", "p/d1/cmd/ping/result"), None);
        assert_eq!(command_name("p", "d1", "p/d1/cmd/"), None);
        assert_eq!(command_name("p", "d1", "q/d1/cmd/ping"), None);
    }
}
