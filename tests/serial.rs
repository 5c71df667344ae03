//! Serial sensor over a real pty pair (socat): every record of a paced 115200-baud stream is
//! inferred, garbage and over-long lines are counted and skipped, and a hang-up is survived.

use crate::support::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A socat pty pair: the daemon opens `device`, the test writes to `feeder`.
struct PtyPair {
    device: PathBuf,
    feeder: PathBuf,
    child: Child,
}

impl PtyPair {
    fn start(dir: &Path) -> PtyPair {
        let (device, feeder) = (dir.join("ttyDEV"), dir.join("ttyFEED"));
        let _ = std::fs::remove_file(&device);
        let _ = std::fs::remove_file(&feeder);
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", device.display()))
            .arg(format!("pty,raw,echo=0,link={}", feeder.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need socat on PATH");
        assert!(
            wait_until(Duration::from_secs(10), || device.exists()
                && feeder.exists()),
            "socat did not create its pty links"
        );
        PtyPair {
            device,
            feeder,
            child,
        }
    }

    fn stop(&mut self) {
        signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `bytes` no faster than a 115200-baud 8N1 line carries them (11520 bytes/s).
fn write_at_115200(feeder: &Path, bytes: &[u8]) {
    const BYTES_PER_SEC: f64 = 11_520.0;
    let mut port = std::fs::OpenOptions::new()
        .write(true)
        .open(feeder)
        .unwrap();
    let start = Instant::now();
    for (i, chunk) in bytes.chunks(256).enumerate() {
        let due = Duration::from_secs_f64((i * 256) as f64 / BYTES_PER_SEC);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        port.write_all(chunk).unwrap();
    }
    port.flush().unwrap();
}

fn record_line(i: usize) -> String {
    format!("{i},{i}.5,-{i}\n")
}

/// The `i` each prediction echoes back, checking the record came through whole.
fn echoed(consumer: &Recorder) -> Vec<usize> {
    consumer
        .json()
        .iter()
        .map(|(_, p)| {
            let v: Vec<f64> = p["result"]["outputs"]["y"]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let i = v[0] as usize;
            assert_eq!(v, vec![i as f64, i as f64 + 0.5, -(i as f64)], "{p}");
            i
        })
        .collect()
}

#[test]
fn every_record_arrives_garbage_is_counted_and_a_hang_up_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let mut pty = PtyPair::start(dir.path());
    let body = format!(
        r#"{model}
[[sensors]]
id = "uart0"
model = "echo"
type = "serial"
port = "{port}"
baud = 115200
framing = {{ type = "csv", max_line = 256 }}
# The outbox syncs every record to disk; on a slow disk one sync can take longer than the 1.6 ms
# between records at 115200 baud. A deeper queue rides out such stalls (the pipeline keeps up on
# average); the test checks at the end that nothing was dropped.
queue = {{ capacity = 2048, overflow = "drop_oldest" }}

[mqtt]
broker = "{broker}"
"#,
        model = raw_model_toml(
            "echo",
            "models/echo.onnx",
            3,
            "input_shapes = { x = [1, 3] }"
        ),
        port = pty.device.display(),
        broker = broker.url(),
    );
    let metrics = free_port();
    let config = write_config(
        dir.path(),
        "serial.toml",
        &format!("{body}{}", metrics_toml(metrics)),
    );
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .log_contains("Sensor opened")),
        "{}",
        daemon.log()
    );

    // 1. 10,000 clean records at line speed: none lost.
    let clean = 10_000;
    let stream: String = (0..clean).map(record_line).collect();
    write_at_115200(&pty.feeder, stream.as_bytes());
    assert!(
        wait_until(Duration::from_secs(60), || consumer.count() >= clean),
        "{} of {clean} predictions arrived\n{}",
        consumer.count(),
        daemon.log()
    );
    let mut got = echoed(&consumer);
    got.sort_unstable();
    assert_eq!(got, (0..clean).collect::<Vec<_>>());

    // 2. 5% of lines garbage bytes, 1% over-long lines: every valid record still arrives.
    let mut noisy = Vec::new();
    let mut valid = Vec::new();
    let (mut garbage, mut long) = (0, 0);
    let mut rng = 0x2545_f491_u32;
    for k in 0..2000 {
        if k % 20 == 7 {
            garbage += 1;
            // Starts with a byte that is never UTF-8, then random bytes other than newline.
            noisy.push(0xff);
            for _ in 0..(10 + k % 30) {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                let b = (rng & 0xff) as u8;
                noisy.push(if b == b'\n' { 0 } else { b });
            }
            noisy.push(b'\n');
        } else if k % 100 == 55 {
            long += 1;
            noisy.extend(std::iter::repeat_n(b"1,".as_slice(), 300).flatten());
            noisy.push(b'\n');
        } else {
            let i = clean + k;
            valid.push(i);
            noisy.extend_from_slice(record_line(i).as_bytes());
        }
    }
    write_at_115200(&pty.feeder, &noisy);
    let expected = clean + valid.len();
    assert!(
        wait_until(Duration::from_secs(30), || consumer.count() >= expected),
        "{} of {expected} predictions arrived\n{}",
        consumer.count(),
        daemon.log()
    );

    // 3. The other end hangs up; once it is back, reading resumes without a restart.
    pty.stop();
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log_contains("Sensor lost")),
        "{}",
        daemon.log()
    );
    let mut pty = PtyPair::start(dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .log_contains("Sensor connected")),
        "{}",
        daemon.log()
    );
    let after: Vec<usize> = (20_000..20_100).collect();
    let stream: String = after.iter().map(|&i| record_line(i)).collect();
    write_at_115200(&pty.feeder, stream.as_bytes());
    let expected = expected + after.len();
    assert!(
        wait_until(Duration::from_secs(30), || consumer.count() >= expected),
        "{} of {expected} predictions arrived\n{}",
        consumer.count(),
        daemon.log()
    );
    let mut got = echoed(&consumer);
    got.sort_unstable();
    let mut want: Vec<usize> = (0..clean).chain(valid).chain(after).collect();
    want.sort_unstable();
    assert_eq!(got, want, "every valid record inferred exactly once");

    // Every prediction has arrived, so the counters are final.
    let counters = SensorCounters::scrape(metrics, "uart0");
    assert_eq!(counters.errors, garbage + long, "{counters:?}");
    assert_eq!(counters.dropped, 0, "{counters:?}");
    assert_eq!(counters.inferred, want.len() as u64, "{counters:?}");
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    pty.stop();
}
