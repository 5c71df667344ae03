//! TLS to the broker with rustls: a custom CA or the system's roots, and an optional client
//! certificate for mutual TLS.

use crate::config::TlsConfig;
use crate::pem::{read_certificates, read_private_key, PemError};
use std::sync::Arc;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be used.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// rustls refused the certificates or the key.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// No trusted root could be found.
    #[error("no CA to trust: set mqtt.tls.ca_file or install the system's CA certificates")]
    NoRoots,
}

/// A rustls client config from the settings (ring as the crypto provider, TLS 1.2 and 1.3).
pub fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(ca) => {
            for cert in read_certificates(ca)? {
                roots.add(cert)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A malformed system certificate is not a reason to trust none of the others.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(read_certificates(cert)?, read_private_key(key)?)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
