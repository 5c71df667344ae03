//! A test PKI: a CA, the broker's certificate, client certificates by common name, and a CA that
//! nobody trusts.

use std::path::{Path, PathBuf};

/// A test PKI written into a folder: a CA, the broker's certificate (for 127.0.0.1), client
/// certificates by common name, and a second CA that nobody trusts.
pub struct Pki {
    pub dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    /// Creates `dir` (readable by mosquitto's own user) with `ca.pem`, `broker.pem` and
    /// `broker.key`.
    pub fn new(dir: &Path) -> Pki {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (ca_cert, ca_key) = Pki::self_signed_ca("edgeinfer test CA");
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_cert,
            ca_key,
        };
        pki.write("ca.pem", &pki.ca_cert.pem());
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "broker");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        pki.issue(params, "broker");
        pki
    }

    fn self_signed_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        (params.self_signed(&key).unwrap(), key)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    fn issue(&self, params: rcgen::CertificateParams, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client certificate and key for `common_name` (the broker takes it as the user name),
    /// as `{common_name}.pem` and `{common_name}.key`.
    pub fn client(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, common_name)
    }

    /// A client certificate for `common_name` signed by a CA the broker does not trust.
    pub fn untrusted_client(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let (rogue_cert, rogue_key) = Pki::self_signed_ca("rogue CA");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &rogue_cert, &rogue_key).unwrap();
        let name = format!("rogue-{common_name}");
        (
            self.write(&format!("{name}.pem"), &cert.pem()),
            self.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }

    /// The `[mqtt.tls]` lines for a client with the given certificate (none: no client cert).
    pub fn tls_toml(&self, client: Option<&(PathBuf, PathBuf)>) -> String {
        let mut s = format!("\n[mqtt.tls]\nca_file = \"{}\"\n", self.ca().display());
        if let Some((cert, key)) = client {
            s.push_str(&format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        s
    }
}
