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

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mosquitto did not start on port {port}"
        );
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

/// A batch (JSON array) as its elements; anything else as it is.
pub fn unbatch(payload: &[u8]) -> Vec<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect(),
        _ => vec![payload.to_vec()],
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
        let mut opts = MqttOptions::new(format!("test-consumer-{port}"), host, port);
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
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("Prediction stored"))
            .filter_map(|l| {
                let at = l.find("id=\"")? + 4;
                let end = l[at..].find('"')? + at;
                Some(l[at..end].to_string())
            })
            .collect()
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
