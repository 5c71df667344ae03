//! MQTT: topic names, connection options (TLS, credentials), the connection every client is built
//! on, and the uplink that drains the outbox to the broker.

mod drain;
pub mod options;
pub mod session;
pub mod tls;
pub mod topics;
mod uplink;

pub use uplink::Uplink;
