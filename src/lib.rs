//! edgeinfer: sensors → ONNX inference → durable outbox → MQTT, for small Linux boards.

pub mod app;
pub mod backend;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod durable;
pub mod frame;
pub mod homeassistant;
pub mod jpeg;
pub mod manage;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod npy;
pub mod outbox;
pub mod pem;
pub mod pipeline;
pub mod prediction;
pub mod recording;
pub mod sensor;
pub mod service;
