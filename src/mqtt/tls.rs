//! TLS to the broker with rustls: a custom CA or the system's roots, and an optional client
//! certificate for mutual TLS.

use crate::config::TlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM certificate.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    /// A file holds no PEM private key.
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    /// rustls refused the certificates or the key.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// No trusted root could be found.
    #[error("no CA to trust: set mqtt.tls.ca_file or install the system's CA certificates")]
    NoRoots,
}

/// Every certificate in a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_err)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_path_buf(),
        })
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
