//! MQTT: topic names and the uplink that drains the outbox to the broker.

mod drain;
pub mod topics;
mod uplink;

pub use uplink::Uplink;
