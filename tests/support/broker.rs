//! mosquitto brokers of the test's own on free loopback ports: a plain one with persistence, and a
//! TLS one that takes only clients with a certificate from the test's PKI.

use super::pki::Pki;
use super::wait::{free_port, signal, wait_for_listener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A mosquitto broker of the test's own, with persistence so that a consumer's session survives a
/// broker restart.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker {
            port: free_port(),
            dir: writable_tempdir(),
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let conf = write_mosquitto_conf(self.dir.path(), &[("127.0.0.1".to_string(), self.port)]);
        self.child = Some(spawn_mosquitto(&conf, self.port));
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker gracefully (it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A mosquitto that takes only TLS clients with a certificate from `pki`'s CA, names each client
/// by its certificate's common name, and applies `acl` (mosquitto ACL file syntax).
pub struct TlsBroker {
    pub port: u16,
    /// Holds the config and ACL files while the broker runs.
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TlsBroker {
    pub fn start(pki: &Pki, acl: &str) -> TlsBroker {
        let dir = writable_tempdir();
        let acl_file = dir.path().join("acl");
        std::fs::write(&acl_file, acl).unwrap();
        std::fs::set_permissions(&acl_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\ncafile {ca}\ncertfile {dir}/broker.pem\nkeyfile {dir}/broker.key\nrequire_certificate true\nuse_identity_as_username true\nallow_anonymous false\nacl_file {acl}\nlog_dest none\n",
                ca = pki.ca().display(),
                dir = pki.dir.display(),
                acl = acl_file.display()
            ),
        )
        .unwrap();
        TlsBroker {
            port,
            child: Some(spawn_mosquitto(&conf, port)),
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A temporary folder the broker may write (see [`open_to_broker`]).
fn writable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    open_to_broker(dir.path());
    dir
}

/// Lets anyone write `dir`: started as root, mosquitto drops to its own user, which must still
/// write its persistence file there.
pub fn open_to_broker(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Starts mosquitto on `conf` and waits until it listens on loopback `port`.
fn spawn_mosquitto(conf: &Path, port: u16) -> Child {
    let mut child = Command::new(mosquitto_path())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (apt-get install mosquitto)");
    wait_for_listener(&mut child, port);
    child
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Writes `dir/mosquitto.conf` for a broker listening on each (address, port) in `listeners`,
/// persisting into `dir` (which the caller makes writable for mosquitto's own user), and returns its
/// path.
pub fn write_mosquitto_conf(dir: &Path, listeners: &[(String, u16)]) -> PathBuf {
    let mut text = String::new();
    for (addr, port) in listeners {
        text.push_str(&format!("listener {port} {addr}\n"));
    }
    text.push_str(&format!(
        "allow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\nlog_dest none\n",
        dir.display()
    ));
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, text).unwrap();
    conf
}

/// mosquitto lives in /usr/sbin, which is not on every user's PATH.
pub fn mosquitto_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOSQUITTO") {
        return p.into();
    }
    let sbin = Path::new("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("mosquitto")
    }
}
