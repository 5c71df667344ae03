//! The integration tests, as one test binary (one link, and shared helpers that are checked for
//! dead code across the whole suite). Each module is one area; `cargo test --test integration
//! <module>::` runs one of them.

mod support;

mod audio;
mod backend_conformance;
mod backend_selection;
mod backpressure;
mod bad_models;
mod bench_cli;
mod camera;
mod cli_check_config;
mod cluster;
mod command_source;
mod compare;
mod crash_recovery;
mod daemon_in_process;
mod deb_package;
mod fleet;
mod homeassistant;
mod journal;
mod metrics;
mod mqtt_delivery;
mod netns_harness;
mod onnxruntime_library;
mod ota;
mod outbox_cap;
mod outbox_cli;
mod outbox_faults;
mod progress;
mod real_devices;
mod record_replay;
mod remote_commands;
mod remote_fuzz;
mod remote_tls;
mod serial;
mod service;
