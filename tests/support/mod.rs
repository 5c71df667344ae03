//! Test harness: a real mosquitto on a free loopback port, a real MQTT consumer, and the daemon as a
//! child process whose log lines the test can read.
#![allow(dead_code)]

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod netns;
pub mod remote;
pub mod service_manager;

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A port nothing listens on right now, below the kernel's ephemeral range so that no client
/// socket can take it as its own port before the server binds it, and no connection probe can
/// connect to itself on it; each call in a process gets another port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static CALLS: AtomicU32 = AtomicU32::new(0);
    // Test binaries run one after another, but each starts from its own place in the range.
    let start = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    for _ in 0..COUNT {
        let n = start + CALLS.fetch_add(1, Ordering::SeqCst) % COUNT;
        let port = (FIRST + n % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// Waits until the server `child` accepts connections on loopback `port`; panics if it exits
/// first or takes more than 10 s.
pub fn wait_for_listener(child: &mut Child, port: u16) {
    let up = wait_until(Duration::from_secs(10), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server meant for port {port} exited: {status}");
        }
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().map(|a| a.port()).ok() != Some(port))
    });
    assert!(up, "nothing listens on port {port} after 10 s");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// A mosquitto broker of the test's own, with persistence so that a consumer's session survives a
/// broker restart.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        // Started as root, mosquitto drops to its own user, which must still write its
        // persistence file here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut b = Broker {
            port: free_port(),
            dir,
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let conf = write_mosquitto_conf(self.dir.path(), &[("127.0.0.1".to_string(), self.port)]);
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        let mut child = child;
        wait_for_listener(&mut child, self.port);
        self.child = Some(child);
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `dir/mosquitto.conf` for a broker listening on each (address, port) in `listeners`,
/// persisting into `dir` (which the caller makes writable for mosquitto's own user), and returns its
/// path.
fn write_mosquitto_conf(dir: &Path, listeners: &[(String, u16)]) -> PathBuf {
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
fn mosquitto_path() -> PathBuf {
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

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Messages received, as (topic, payload), in arrival order.
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A real MQTT client subscribed with QoS 1 and a persistent session, recording every message.
pub struct Consumer {
    pub messages: Received,
    /// When each element of `messages` arrived.
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A batch (JSON array) as its elements, anything else as one; JSON in one canonical form (keys
/// sorted), so that a prediction reads the same whether it came alone or in a batch.
pub fn unbatch(payload: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect(),
        Ok(v) => vec![serde_json::to_vec(&v).unwrap()],
        Err(_) => vec![payload.to_vec()],
    }
}

impl Consumer {
    pub fn start(port: u16, filter: &str) -> Consumer {
        Consumer::start_at("127.0.0.1", port, filter)
    }

    /// Like `start`, for a broker at `host` rather than on loopback.
    pub fn start_at(host: &str, port: u16, filter: &str) -> Consumer {
        let messages: Received = Arc::new(Mutex::new(Vec::new()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        // Unique per consumer: two with one client id would keep taking each other's session.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut opts = MqttOptions::new(
            format!("test-consumer-{}-{port}-{n}", std::process::id()),
            host,
            port,
        );
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(opts, 100);
        let thread = {
            let (messages, arrivals, stop, subscribed) = (
                messages.clone(),
                arrivals.clone(),
                stop.clone(),
                subscribed.clone(),
            );
            let filter = filter.to_string();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            subscribed.store(true, Ordering::Relaxed)
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let items = unbatch(&p.payload);
                            let now = Instant::now();
                            arrivals
                                .lock()
                                .unwrap()
                                .extend(std::iter::repeat_n(now, items.len()));
                            messages
                                .lock()
                                .unwrap()
                                .extend(items.into_iter().map(|b| (p.topic.clone(), b)))
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                        Err(_) => {}
                    }
                }
                let _ = client.try_disconnect();
            })
        };
        assert!(
            wait_until(Duration::from_secs(10), || subscribed
                .load(Ordering::Relaxed)),
            "consumer could not subscribe"
        );
        Consumer {
            messages,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    /// Predictions received (a batch counts as its predictions).
    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Every message body parsed as JSON, in arrival order.
    pub fn json(&self) -> Vec<(String, serde_json::Value)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(t, p)| {
                (
                    t.clone(),
                    serde_json::from_slice(p).expect("payload is JSON"),
                )
            })
            .collect()
    }

    /// Ids of received predictions, in arrival order (duplicates kept).
    pub fn ids(&self) -> Vec<String> {
        self.json()
            .into_iter()
            .map(|(_, v)| v["id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ids logged as durably stored ("Prediction stored id=...") in a daemon's log lines.
pub fn stored_ids_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("Prediction stored"))
        .filter_map(|l| {
            let at = l.find("id=\"")? + 4;
            let end = l[at..].find('"')? + at;
            Some(l[at..end].to_string())
        })
        .collect()
}

/// The daemon as a child process.
pub struct Daemon {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Like `start`, with extra environment variables for the daemon.
    pub fn start_with_env(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "edgeinfer=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("EDGEINFER_TEST_ECHO").is_some() {
                        eprintln!("daemon: {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            })
        };
        Daemon {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Ids the daemon logged as durably stored ("Prediction stored id=...").
    pub fn stored_ids(&self) -> Vec<String> {
        stored_ids_in(&self.lines.lock().unwrap())
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit status (panics if it does not exit within `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        // Signal handlers are installed during start-up; a SIGTERM before that kills by default.
        let started = wait_until(timeout, || self.log_contains("Running"));
        assert!(started, "daemon never reported Running:\n{}", self.log());
        signal(self.child.id(), "TERM");
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The log is complete once the reader has seen the pipe close.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or say goodbye. The log stays readable.
    pub fn kill(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `rows` lines of "seconds,temperature,humidity,vibration" numbers.
pub fn write_readings(path: &Path, rows: usize) {
    let mut text = String::from("seconds,temperature,humidity,vibration\n");
    for i in 0..rows {
        let t = 40.0 + (i % 30) as f64;
        let v = 0.5 + (i % 7) as f64 * 0.4;
        text.push_str(&format!("{i},{t},{},{v}\n", 50 + i % 10));
    }
    std::fs::write(path, text).unwrap();
}

/// Writes `dir/name` as a config: the `[device]` table of every test (id "t1", state under
/// `dir/state`) followed by `body`.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[device]\nid = \"t1\"\ndata_dir = \"{}\"\n{body}",
        dir.join("state").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A `[[models]]` table for the bundled vibration model with the given labels file.
pub fn vibration_model_toml(id: &str, labels: &Path) -> String {
    format!(
        r#"
[[models]]
id = "{id}"
path = "{}"
preprocess = {{ type = "record", fields = [1, 2, 3] }}
postprocess = {{ type = "classify", top_k = 2, labels = "{}" }}
"#,
        repo("models/vibration.onnx").display(),
        labels.display()
    )
}

/// A `[[sensors]]` table replaying a readings file (as written by `write_readings`) into `model`.
pub fn line_sensor_toml(id: &str, model: &str, readings: &Path, rate: Option<f64>) -> String {
    let rate = rate.map(|r| format!("rate = {r}")).unwrap_or_default();
    format!(
        r#"
[[sensors]]
id = "{id}"
model = "{model}"
type = "line_replay"
path = "{}"
header = true
{rate}
"#,
        readings.display()
    )
}

/// A config with the vibration model fed by one line-replay sensor `sensor` at 20 readings/s,
/// looping over 50 readings, followed by `extra` TOML.
pub fn looping_line_config(dir: &Path, sensor: &str, extra: &str) -> PathBuf {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 50);
    let body = format!(
        "{}{}loop = true\n{extra}",
        vibration_model_toml("vibration", &repo("models/vibration.labels")),
        line_sensor_toml(sensor, "vibration", &readings, Some(20.0)),
    );
    write_config(dir, "edgeinfer.toml", &body)
}

/// A config with the vibration model fed by one line-replay sensor (`serial0`) and `outbox` TOML.
/// `[mqtt]` comes last, so a caller may append keys to it before adding more tables.
pub fn line_config(
    dir: &Path,
    readings: &Path,
    rate: Option<f64>,
    broker: &str,
    outbox: &str,
) -> PathBuf {
    let body = format!(
        r#"{model}{sensor}
{outbox}

[mqtt]
broker = "{broker}"
reconnect_min_ms = 100
reconnect_max_ms = 1000
"#,
        model = vibration_model_toml("vibration", &repo("models/vibration.labels")),
        sensor = line_sensor_toml("serial0", "vibration", readings, rate),
    );
    write_config(dir, "edgeinfer.toml", &body)
}

/// Outbox size and counters of a stopped daemon whose config was written into `dir`.
pub fn outbox_stats(dir: &Path) -> edgeinfer::outbox::OutboxStats {
    edgeinfer::outbox::Outbox::open(
        &dir.join("state/outbox"),
        &edgeinfer::config::OutboxConfig::default(),
    )
    .unwrap()
    .stats()
}

/// Runs the daemon until its sensors reach the end of their input, stops it with SIGTERM and
/// returns its whole log (shutdown totals included); panics if it does not get there or exits
/// badly.
pub fn run_to_end(config: &Path) -> String {
    let daemon = Daemon::start(config);
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .log_contains("reached the end of its input")),
        "{}",
        daemon.log()
    );
    let lines = daemon.lines.clone();
    let status = daemon.terminate(Duration::from_secs(10));
    let log = lines.lock().unwrap().join("\n");
    assert!(status.success(), "{log}");
    log
}

/// The counter `key` of the "Sensor totals" line a stopped daemon logged for `sensor`.
pub fn sensor_total(log: &str, sensor: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("Sensor totals") && l.contains(&format!("sensor={sensor} ")))
        .unwrap_or_else(|| panic!("no totals for {sensor}:\n{log}"));
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 2;
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

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

/// A mosquitto that takes only TLS clients with a certificate from `pki`'s CA, names each client
/// by its certificate's common name, and applies `acl` (mosquitto ACL file syntax).
pub struct TlsBroker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TlsBroker {
    pub fn start(pki: &Pki, acl: &str) -> TlsBroker {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
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
        let mut child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        wait_for_listener(&mut child, port);
        TlsBroker {
            port,
            dir,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// MQTT options for a test client of a TLS broker, with the client certificate given (if any).
pub fn tls_options(
    port: u16,
    client_id: &str,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> MqttOptions {
    let tls = edgeinfer::config::TlsConfig {
        ca_file: Some(ca.to_path_buf()),
        cert_file: client.map(|c| c.0.clone()),
        key_file: client.map(|c| c.1.clone()),
    };
    let config = edgeinfer::mqtt::tls::client_config(&tls).unwrap();
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    opts
}

/// MQTT options for a plain test client of `port`.
pub fn plain_options(port: u16, client_id: &str) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    opts
}

/// A test MQTT client that subscribes to filters, records what arrives (retained messages
/// included) and publishes.
pub struct Peer {
    client: Client,
    pub messages: Received,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    /// Connects and subscribes (QoS 1); the error says why the broker did not let it in.
    pub fn connect(opts: MqttOptions, filters: &[&str]) -> Result<Peer, String> {
        let messages: Received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state: Arc<Mutex<Option<Result<(), String>>>> = Arc::new(Mutex::new(None));
        let (client, mut connection) = Client::new(opts, 100);
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let thread = {
            let (messages, stop, state, client) = (
                messages.clone(),
                stop.clone(),
                state.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                let mut pending_subacks = filters.len();
                while !stop.load(Ordering::Relaxed) {
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            if filters.is_empty() {
                                *state.lock().unwrap() = Some(Ok(()));
                            }
                            for f in &filters {
                                let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            pending_subacks = pending_subacks.saturating_sub(1);
                            if pending_subacks == 0 {
                                *state.lock().unwrap() = Some(Ok(()));
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            // A batch of predictions counts as its predictions.
                            let items = if p.topic.contains("/predictions/") {
                                unbatch(&p.payload)
                            } else {
                                vec![p.payload.to_vec()]
                            };
                            messages
                                .lock()
                                .unwrap()
                                .extend(items.into_iter().map(|b| (p.topic.clone(), b)))
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            let mut s = state.lock().unwrap();
                            if s.is_none() {
                                *s = Some(Err(e.to_string()));
                                return;
                            }
                            drop(s);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(_) => {}
                    }
                }
                let _ = client.try_disconnect();
            })
        };
        let peer = Peer {
            client,
            messages,
            stop,
            thread: Some(thread),
        };
        if !wait_until(Duration::from_secs(10), || state.lock().unwrap().is_some()) {
            return Err("no answer from the broker".into());
        }
        let outcome = state.lock().unwrap().take().unwrap();
        // On an error, dropping the peer stops its thread.
        outcome.map(|()| peer)
    }

    /// Publishes with QoS 1.
    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .unwrap();
    }

    /// Payloads received on `topic`, in arrival order.
    pub fn on(&self, topic: &str) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// JSON payloads received on `topic`, in arrival order (non-JSON ones left out).
    pub fn json_on(&self, topic: &str) -> Vec<serde_json::Value> {
        self.on(topic)
            .iter()
            .filter_map(|p| serde_json::from_slice(p).ok())
            .collect()
    }

    /// Waits for a JSON message on `topic` that satisfies `f`, and returns it.
    pub fn wait_json(
        &self,
        topic: &str,
        timeout: Duration,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.json_on(topic).into_iter().find(|v| f(v));
            found.is_some()
        });
        found
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An operator key pair for signing commands in tests.
pub fn operator_key() -> ed25519_dalek::SigningKey {
    edgeinfer::manage::auth::generate_key().unwrap()
}

/// A signed command envelope for `device`, valid for a minute from now, as JSON bytes.
pub fn signed_command(
    key: &ed25519_dalek::SigningKey,
    device: &str,
    name: &str,
    seq: u64,
    args: serde_json::Value,
) -> (String, Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let command = edgeinfer::manage::auth::Command {
        id: format!("test-{name}-{seq}"),
        device: device.to_string(),
        command: name.to_string(),
        issued_at: now,
        expires_at: now + 60,
        seq,
        args,
    };
    let envelope = edgeinfer::manage::auth::Envelope::sign(&command, key);
    (command.id, serde_json::to_vec(&envelope).unwrap())
}

/// A managed device's config: the vibration model fed by a looping line replay (`serial0`) at
/// `rate` frames per second, `[mqtt]` on `broker`, and `[remote]` trusting `key` with telemetry
/// every second. `extra` is appended inside `[remote]`.
pub fn remote_config(
    dir: &Path,
    broker: &str,
    key: &ed25519_dalek::SigningKey,
    rate: f64,
    extra: &str,
) -> PathBuf {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 50);
    let config = line_config(dir, &readings, Some(rate), broker, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("rate = {rate}"),
        &format!("rate = {rate}\nloop = true"),
    );
    let text = format!(
        "{text}\n[remote]\noperator_keys = [\"{}\"]\ntelemetry_interval_secs = 1\n{extra}\n",
        edgeinfer::manage::auth::public_key_text(&key.verifying_key())
    );
    std::fs::write(&config, text).unwrap();
    config
}
