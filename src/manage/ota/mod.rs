//! Model updates over MQTT: a signed manifest, chunks written to a staging file that survives
//! restarts, verification (size, sha256, the backend loading it, a golden input), then
//! installation beside the running version and a trial that commits or rolls back.

pub mod protocol;
