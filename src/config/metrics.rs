//! `[metrics]`: an optional Prometheus endpoint.

use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;

/// Where `/metrics` is served. The section is optional: without it nothing listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port to listen on, e.g. `127.0.0.1:9464`. Keep it on loopback (scraped by a
    /// local agent, or reached through an SSH tunnel): the endpoint has no authentication.
    pub listen: String,
}

impl MetricsConfig {
    /// The listening address (valid once `validate` found no error).
    pub fn address(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        match self.address() {
            None => errors.push(ConfigError::new(
                format!("{path}.listen"),
                format!(
                    "\"{}\" is not an address and port such as 127.0.0.1:9464",
                    self.listen
                ),
            )),
            Some(addr) if !addr.ip().is_loopback() => errors.push(ConfigError::new(
                format!("{path}.listen"),
                "must be a loopback address (127.0.0.1 or ::1): the endpoint has no authentication",
            )),
            Some(_) => {}
        }
    }
}
