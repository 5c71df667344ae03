//! Connection options shared by every MQTT connection of the daemon: address, TLS, credentials,
//! keep-alive.

use super::tls;
use crate::config::{BrokerAddress, MqttConfig};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use std::time::Duration;
use tracing::error;

/// Options for a connection to the configured broker under `client_id`.
///
/// TLS material is read here, on every connection, so that rotated certificates are picked up.
/// If it cannot be read (validation checked it at start-up, so it changed since), the error is
/// logged and the connection is set up to trust nothing: it then fails its handshake, and the
/// caller's reconnect loop retries and reports it, rather than falling back to plain text.
pub fn build(config: &MqttConfig, address: &BrokerAddress, client_id: String) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, address.host.clone(), address.port);
    opts.set_keep_alive(Duration::from_secs(config.keep_alive_secs));
    if let Some(user) = &config.username {
        opts.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if address.tls {
        let settings = config.tls.clone().unwrap_or_default();
        let client = tls::client_config(&settings).unwrap_or_else(|e| {
            error!(broker = %config.broker, error = %e, "TLS settings unusable; the connection will fail");
            untrusting()
        });
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(client)));
    }
    opts
}

/// A client config whose handshakes always fail: no root is trusted.
fn untrusting() -> std::sync::Arc<rustls::ClientConfig> {
    // With only the ring provider compiled in, `builder()` uses it and cannot fail.
    std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}
