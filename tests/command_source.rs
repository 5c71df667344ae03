//! `command` sensors: frames from a program's standard output. Real ffmpeg processes write MJPEG and
//! raw frames of solid colours that the colour model names; producers that exit, hang or write
//! garbage between frames are restarted, killed or resynchronised, each counted on `/metrics`; a
//! chatty program's standard error is rate-limited; and no program outlives the daemon, whether
//! it stops or is killed.

use crate::support::*;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long anything the tests wait for may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// An ffmpeg command writing a solid `colour` at 64×64, 10 frames a second in real time, with
/// `output` (its output options, ending in `-`).
fn ffmpeg(colour: &str, output: &str) -> String {
    format!(
        "{} -re -f lavfi -i color=c={colour}:size=64x64:rate=10 {output}",
        quiet_ffmpeg()
    )
}

/// ffmpeg that says nothing but errors and leaves standard input alone.
fn quiet_ffmpeg() -> &'static str {
    "ffmpeg -hide_banner -loglevel error -nostdin"
}

/// An ffmpeg command, its output options to follow, of a solid `colour` at 64×64 as fast as it
/// can.
fn ffmpeg_still(colour: &str) -> String {
    format!("{} -f lavfi -i color=c={colour}:size=64x64", quiet_ffmpeg())
}

/// MJPEG on standard output.
fn ffmpeg_mjpeg(colour: &str) -> String {
    ffmpeg(colour, "-f mjpeg -")
}

/// The colour model (id `colour`, 64×64 RGB in, its top label out): the harness's table, without
/// the replay sensor that comes with it.
fn colour_model() -> String {
    let lines = format!(
        "preprocess = {{ type = \"image\" }}\n\
         postprocess = {{ type = \"classify\", top_k = 1, labels = \"{}\" }}",
        repo("models/colour.labels").display()
    );
    let with_replay = colour_replay_toml("unused", &lines, Path::new("unused"));
    let (model, _replay) = with_replay.split_once("[[sensors]]").unwrap();
    model.to_string()
}

/// A `type = "command"` sensor table running `argv` into the colour model, with `extra` keys.
fn sensor_argv(id: &str, argv: &[&str], extra: &str) -> String {
    format!(
        "\n[[sensors]]\nid = \"{id}\"\nmodel = \"colour\"\ntype = \"command\"\ncommand = {}\n{extra}\n",
        toml::Value::from(argv.to_vec())
    )
}

/// A sensor table running `sh -c script`.
fn sensor(id: &str, script: &str, extra: &str) -> String {
    sensor_argv(id, &["sh", "-c", script], extra)
}

/// A daemon with the colour model fed by `sensors`, publishing to its own broker, and the
/// predictions it publishes.
struct Rig {
    _dir: tempfile::TempDir,
    metrics: u16,
    consumer: Recorder,
    daemon: Daemon,
    _broker: Broker,
}

impl Rig {
    fn start(sensors: &str) -> Rig {
        let broker = Broker::start();
        let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
        let dir = tempfile::tempdir().unwrap();
        let metrics = free_port();
        let body = format!(
            "{model}{sensors}\n[mqtt]\nbroker = \"{broker}\"\nreconnect_min_ms = 100\n\
             reconnect_max_ms = 1000\n{metrics}",
            model = colour_model(),
            broker = broker.url(),
            metrics = metrics_toml(metrics),
        );
        let config = write_config(dir.path(), "edgeinfer.toml", &body);
        let daemon = Daemon::start(&config);
        Rig {
            _dir: dir,
            metrics,
            consumer,
            daemon,
            _broker: broker,
        }
    }

    /// The top label of each prediction received, by sensor, in arrival order.
    fn labels(&self) -> HashMap<String, Vec<String>> {
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        for (_, v) in self.consumer.json() {
            let label = v["result"]["top"][0]["label"].as_str().unwrap().to_string();
            let sensor = v["sensor"].as_str().unwrap().to_string();
            labels.entry(sensor).or_default().push(label);
        }
        labels
    }

    /// Waits until `sensor`'s counters satisfy `ok`; panics with the log otherwise.
    fn wait_for(&self, sensor: &str, what: &str, ok: impl Fn(SensorCounters) -> bool) {
        let reached = wait_until(PATIENCE, || {
            SensorCounters::read(self.metrics, sensor).is_some_and(&ok)
        });
        assert!(
            reached,
            "{sensor}: {what} not reached: {:?}\n{}",
            SensorCounters::read(self.metrics, sensor),
            self.daemon.log()
        );
    }

    /// Waits until `sensor` has `n` predictions received, all labelled `colour`.
    fn expect_colour(&self, sensor: &str, n: usize, colour: &str) {
        let arrived = wait_until(PATIENCE, || {
            self.labels().get(sensor).is_some_and(|l| l.len() >= n)
        });
        assert!(
            arrived,
            "{sensor}: {:?}\n{}",
            self.labels(),
            self.daemon.log()
        );
        let labels = &self.labels()[sensor];
        assert!(
            labels.iter().all(|l| l == colour),
            "{sensor} should see {colour}: {labels:?}"
        );
    }

    /// Stops the daemon with SIGTERM; it must exit cleanly. Returns its log.
    fn stop(self) -> String {
        let lines = self.daemon.lines.clone();
        let status = self.daemon.terminate(Duration::from_secs(10));
        let log = lines.lock().unwrap().join("\n");
        assert!(status.success(), "{log}");
        assert!(!log.contains("panicked"), "{log}");
        log
    }
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// A `sleep` long enough to be a hang, with a duration no other process has (test `n` of this
/// process): its marker.
fn unique_sleep(n: u32) -> String {
    format!("sleep {}{n}", 800_000 + std::process::id() % 100_000)
}

/// Waits until no process has `marker` in its command line.
fn assert_none_left(marker: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || processes_with(marker)
            .is_empty()),
        "left behind: {:?}",
        processes_with(marker)
    );
}

#[test]
fn mjpeg_from_ffmpeg_is_classified_by_colour_and_stderr_is_rate_limited() {
    // The red producer says 100 lines on standard error before it starts.
    let chatty = format!(
        "i=0; while [ $i -lt 100 ]; do echo \"chatter $i\" >&2; i=$((i+1)); done; exec {}",
        ffmpeg_mjpeg("red")
    );
    let rig = Rig::start(&format!(
        "{}{}{}",
        sensor("cam_red", &chatty, ""),
        sensor("cam_green", &ffmpeg_mjpeg("0x00FF00"), ""),
        sensor("cam_blue", &ffmpeg_mjpeg("blue"), ""),
    ));
    for (sensor, colour) in [
        ("cam_red", "red"),
        ("cam_green", "green"),
        ("cam_blue", "blue"),
    ] {
        rig.expect_colour(sensor, 5, colour);
    }
    let counters = SensorCounters::scrape(rig.metrics, "cam_red");
    assert_eq!(
        (counters.errors, counters.reconnects),
        (0, 0),
        "{counters:?}"
    );
    let log = rig.stop();
    // Ten lines in the first ten seconds; the other 90 are reported in one line when the program
    // stops (with the daemon).
    let shown: Vec<&str> = log.lines().filter(|l| l.contains("chatter")).collect();
    assert_eq!(shown.len(), 10, "{log}");
    for (i, line) in shown.iter().enumerate() {
        assert!(line.contains(&format!("chatter {i}")), "{line}");
        assert!(
            line.contains("cam_red") && line.contains("Command stderr"),
            "{line}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("lines suppressed") && l.contains("suppressed=90")),
        "{log}"
    );
}

#[test]
fn raw_rgb24_and_yuyv_frames_are_classified_by_colour() {
    let rgb24 = ffmpeg("blue", "-pix_fmt rgb24 -f rawvideo -");
    let yuyv = ffmpeg("red", "-pix_fmt yuyv422 -f rawvideo -");
    let raw = |format: &str| format!("format = \"{format}\"\nwidth = 64\nheight = 64");
    let rig = Rig::start(&format!(
        "{}{}",
        sensor("cam_rgb", &rgb24, &raw("rgb24")),
        sensor("cam_yuyv", &yuyv, &raw("yuyv")),
    ));
    rig.expect_colour("cam_rgb", 5, "blue");
    rig.expect_colour("cam_yuyv", 5, "red");
    for sensor in ["cam_rgb", "cam_yuyv"] {
        let counters = SensorCounters::scrape(rig.metrics, sensor);
        assert_eq!(counters.errors, 0, "{sensor}: {counters:?}");
    }
    rig.stop();
}

#[test]
fn a_producer_that_exits_is_started_again_and_counted() {
    // Each run writes 20 frames (two seconds) and exits.
    let rig = Rig::start(&sensor(
        "cam0",
        &ffmpeg("0x00FF00", "-frames:v 20 -f mjpeg -"),
        "",
    ));
    // More frames than one run writes, so a later run delivered too.
    rig.wait_for("cam0", "two runs", |c| {
        c.reconnects >= 2 && c.inferred >= 25
    });
    rig.expect_colour("cam0", 25, "green");
    let log = rig.stop();
    assert!(
        log.contains("sh closed its output and exited with status 0"),
        "{log}"
    );
}

#[test]
fn a_producer_that_hangs_is_killed_after_the_stall_timeout_and_started_again() {
    let hang = unique_sleep(1);
    // Five frames, then silence from a shell that waits on a long sleep.
    let script = format!("{}; {hang}", ffmpeg("blue", "-frames:v 5 -f mjpeg -"));
    let rig = Rig::start(&sensor("cam0", &script, "stall_timeout_ms = 1000"));
    rig.wait_for("cam0", "restarts after hangs", |c| {
        c.reconnects >= 2 && c.inferred >= 8
    });
    rig.expect_colour("cam0", 8, "blue");
    let log = rig.stop();
    assert!(log.contains("sh wrote nothing for"), "{log}");
    // The shell and its sleep were killed together, at every restart and at shutdown.
    assert_none_left(&hang);
}

#[test]
fn garbage_between_frames_is_counted_and_the_frames_still_arrive() {
    let dir = tempfile::tempdir().unwrap();
    // Text, a start-of-image marker with no JPEG after it, and bytes that are no marker at all.
    let junk = dir.path().join("junk.bin");
    let mut bytes = b"progress: 42%\n\xFF\xD8\xFF\x00".to_vec();
    bytes.extend((0..3000u32).map(|i| (i * 13 % 251) as u8));
    std::fs::write(&junk, bytes).unwrap();
    // One frame from ffmpeg, then the junk, over and over.
    let script = format!(
        "while :; do {} -frames:v 1 -f mjpeg -; cat '{}'; sleep 0.1; done",
        ffmpeg_still("red"),
        path(&junk)
    );
    let rig = Rig::start(&sensor("cam0", &script, ""));
    rig.wait_for("cam0", "frames and errors", |c| {
        c.errors >= 3 && c.inferred >= 3
    });
    rig.expect_colour("cam0", 3, "red");
    let counters = SensorCounters::scrape(rig.metrics, "cam0");
    assert_eq!(counters.reconnects, 0, "{counters:?}");
    let log = rig.stop();
    assert!(log.contains("bytes that are not a JPEG image"), "{log}");
}

#[test]
fn a_killed_daemon_leaves_no_command_behind() {
    let hang = unique_sleep(2);
    // A program that never writes, and is given all the time in the world to.
    let argv: Vec<&str> = hang.split(' ').collect();
    let mut rig = Rig::start(&sensor_argv("cam0", &argv, "stall_timeout_ms = 600000"));
    assert!(
        wait_until(PATIENCE, || !processes_with(&hang).is_empty()),
        "the command never started:\n{}",
        rig.daemon.log()
    );
    rig.daemon.kill();
    assert_none_left(&hang);
}

/// A camera that pushes H.264 over RTSP (interleaved in TCP) to `url`, from a shell that tries
/// again until a server takes the stream; stopped with its process group when dropped.
struct RtspCamera(std::process::Child);

impl RtspCamera {
    fn start(url: &str, colour: &str) -> RtspCamera {
        let publish = ffmpeg(
            colour,
            &format!(
                "-c:v libx264 -tune zerolatency -pix_fmt yuv420p -f rtsp -rtsp_transport tcp {url}"
            ),
        );
        let child = Command::new("sh")
            .args(["-c", &format!("while :; do {publish}; sleep 0.2; done")])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        RtspCamera(child)
    }
}

impl Drop for RtspCamera {
    fn drop(&mut self) {
        // SAFETY: a plain system call on the group this test started (not yet reaped).
        unsafe {
            libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn an_rtsp_stream_decoded_by_ffmpeg_is_classified_by_colour() {
    // No RTSP server is among the test prerequisites, so the stream goes the other way round:
    // the sensor's ffmpeg listens, as an RTSP server taking a published stream, and the camera
    // pushes to it. What the sensor reads is the same: ffmpeg demuxing RTSP/RTP over TCP,
    // decoding H.264 and writing MJPEG.
    let url = format!("rtsp://127.0.0.1:{}/live", free_port());
    let listen = format!("{} -rtsp_flags listen -i {url} -f mjpeg -", quiet_ffmpeg());
    let argv: Vec<&str> = listen.split(' ').collect();
    let rig = Rig::start(&sensor_argv("door", &argv, ""));
    let _camera = RtspCamera::start(&url, "blue");
    rig.expect_colour("door", 5, "blue");
    rig.stop();
}

#[test]
fn command_sensor_mistakes_are_reported_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sensor = sensor_argv("cam0", &[], "format = \"rgb24\"\nwidth = 64");
    let config = write_config(
        dir.path(),
        "bad.toml",
        &format!("{}{sensor}", colour_model()),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let f = config.display();
    for want in [
        format!("{f}: sensors[0].command: must name a program"),
        format!("{f}: sensors[0].height: required for format = \"rgb24\""),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "{want:?} in:\n{text}"
        );
    }
}

/// `p` as text, for a shell script.
fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}
