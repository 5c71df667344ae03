//! The camera and audio sources against real kernel drivers: vivid, a V4L2 test camera whose
//! picture (`test_pattern`) can be switched while it streams, and snd-aloop, an ALSA loopback card
//! (what is played into device 0 is captured from device 1). Unplugging is unbinding the driver
//! from its platform device, as a USB unplug removes a device under an open file; binding it again
//! is plugging it back in.
//!
//! These need the drivers, so they are ignored on a normal run: `scripts/vm-test.sh` (which
//! `scripts/test.sh` calls) loads them in a throwaway machine and runs these tests there.
//! Counters are read from `/metrics`, as an operator would.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);
/// Capture side of the loopback card, as cpal lists it.
const CAPTURE: &str = "plughw:CARD=Loopback,DEV=1";
/// Playback side of the loopback card.
const PLAYBACK: &str = "plughw:CARD=Loopback,DEV=0";

/// vivid's `test_pattern` menu: solid colours.
const RED: u32 = 7;
const GREEN: u32 = 8;
const BLUE: u32 = 9;
const WHITE: u32 = 6;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs ffmpeg quietly, overwriting its output.
fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-hide_banner", "-loglevel", "error", "-y"];
    all.extend(args);
    run("ffmpeg", &all);
}

fn set_pattern(pattern: u32) {
    let control = format!("test_pattern={pattern}");
    run("v4l2-ctl", &["-d", "/dev/video0", "-c", &control]);
}

/// Unbinds (`unplug`) or binds again the platform device `device` of `driver`. Unbinding returns
/// at once: the kernel may wait for the device to be closed before it finishes.
fn platform(driver: &str, device: &str, action: &str) -> Child {
    let file = format!("/sys/bus/platform/drivers/{driver}/{action}");
    Command::new("sh")
        .args(["-c", &format!("echo {device} > {file}")])
        .spawn()
        .unwrap()
}

/// The top label of every prediction of `sensor` received so far, in arrival order.
fn labels(consumer: &Recorder, sensor: &str) -> Vec<String> {
    consumer
        .json()
        .iter()
        .filter(|(_, v)| v["sensor"] == sensor)
        .filter_map(|(_, v)| v["result"]["top"][0]["label"].as_str().map(String::from))
        .collect()
}

/// `labels` with each run of one label collapsed to one.
fn runs<'a>(labels: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in labels {
        if out.last() != Some(l) {
            out.push(l.clone());
        }
    }
    out
}

/// [`runs`] of the labels in `keep`, the others left out.
fn sequence(labels: &[String], keep: &[&str]) -> Vec<String> {
    runs(labels.iter().filter(|l| keep.contains(&l.as_str())))
}

/// A device with the colour model fed by the camera whose card name is `card` (`cam0`, with
/// `camera` keys) and a looping line replay (`serial0`), publishing to `broker`, counters on `metrics`.
fn camera_config(dir: &Path, card: &str, camera: &str, broker: &str, metrics: u16) -> PathBuf {
    let camera_tables = format!(
        r#"
[[models]]
id = "colour"
path = "{}"
input_shapes = {{ image = [1, 3, 64, 64] }}
preprocess = {{ type = "image", resize = [85, 64], crop = [64, 64] }}
postprocess = {{ type = "classify", top_k = 1, labels = "{}" }}

[[sensors]]
id = "cam0"
model = "colour"
type = "camera"
device = "{card}"
{camera}
{}"#,
        repo("models/colour.onnx").display(),
        repo("models/colour.labels").display(),
        metrics_toml(metrics),
    );
    LineConfig {
        broker: Some(broker.into()),
        extra: camera_tables,
        ..looping_line(dir)
    }
    .write(&dir.join("edgeinfer.toml"))
}

/// What every test here runs on: a broker of its own, a consumer of every prediction, and the
/// daemon with its counters on `metrics`. Fields drop in order: the daemon first.
struct Rig {
    daemon: Daemon,
    consumer: Recorder,
    metrics: u16,
    broker: Broker,
    dir: tempfile::TempDir,
}

impl Rig {
    /// The tone model on the loopback card's capture side, once it captures.
    fn audio() -> Rig {
        let rig = Rig::start(|dir, broker, metrics| audio_config(dir, 2000, broker, metrics));
        wait_capturing(&rig.daemon, rig.metrics);
        rig
    }

    /// Starts the daemon on `config(folder, broker URL, metrics port)`.
    fn start(config: impl FnOnce(&Path, &str, u16) -> PathBuf) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start();
        let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
        let metrics = free_port();
        let daemon = Daemon::start(&config(dir.path(), &broker.url(), metrics));
        Rig {
            daemon,
            consumer,
            metrics,
            broker,
            dir,
        }
    }
}

/// Waits until `sensor` has `more` predictions beyond `since` (of `consumer`'s, all sensors).
fn wait_predictions(consumer: &Recorder, daemon: &Daemon, sensor: &str, more: usize) -> usize {
    let before = labels(consumer, sensor).len();
    assert!(
        wait_until(WAIT, || labels(consumer, sensor).len() >= before + more),
        "{sensor}: fewer than {more} new predictions:\n{}",
        daemon.log()
    );
    labels(consumer, sensor).len()
}

#[test]
#[ignore = "needs the vivid driver: run by scripts/vm-test.sh"]
fn yuyv_from_vivid_follows_the_test_pattern() {
    let camera = "format = \"yuyv\"\nwidth = 640\nheight = 480\nfps = 15\n";
    set_pattern(RED);
    let Rig {
        daemon,
        consumer,
        broker: _broker,
        dir: _dir,
        ..
    } = Rig::start(|dir, broker, metrics| camera_config(dir, "vivid", camera, broker, metrics));
    // Each colour is held until the model has seen it five times, then the next is set.
    for (pattern, label) in [
        (RED, "red"),
        (GREEN, "green"),
        (BLUE, "blue"),
        (WHITE, "white"),
    ] {
        set_pattern(pattern);
        let seen = wait_until(WAIT, || {
            let l = labels(&consumer, "cam0");
            l.iter().rev().take_while(|x| *x == label).count() >= 5
        });
        assert!(
            seen,
            "{label} not predicted after test_pattern={pattern}: {:?}\n{}",
            runs(&labels(&consumer, "cam0")),
            daemon.log()
        );
    }
    let log = daemon.log();
    assert!(
        log.contains("Camera opened")
            && log.contains("card=vivid")
            && log.contains("format=YUYV")
            && log.contains("width=640 height=480"),
        "{log}"
    );
    let all = labels(&consumer, "cam0");
    assert_eq!(
        sequence(&all, &["red", "green", "blue", "white"]),
        ["red", "green", "blue", "white"],
        "{all:?}"
    );
    assert!(daemon.terminate(Duration::from_secs(20)).success());
}

#[test]
#[ignore = "needs the vivid driver: run by scripts/vm-test.sh"]
fn a_missing_format_is_refused_with_what_the_camera_offers_and_a_missing_size_gets_the_nearest() {
    // vivid has no MJPEG: the sensor is retried with the reason, the rest carries on.
    let Rig {
        daemon,
        consumer,
        metrics,
        broker,
        dir,
    } = Rig::start(|dir, broker, metrics| {
        camera_config(dir, "vivid", "format = \"mjpeg\"\n", broker, metrics)
    });
    assert!(
        wait_until(WAIT, || SensorCounters::read(metrics, "cam0")
            .is_some_and(|c| c.reconnects >= 2)),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let refused = log
        .lines()
        .find(|l| l.contains("Sensor unavailable") && l.contains("cam0"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        refused.contains("does not offer MJPEG; it offers:") && refused.contains("YUYV"),
        "{refused}"
    );
    wait_predictions(&consumer, &daemon, "serial0", 5);
    assert!(labels(&consumer, "cam0").is_empty());
    assert!(daemon.terminate(Duration::from_secs(20)).success());

    // 700x500 is not one of its sizes: the driver's nearest is taken, said, and streamed.
    let config = camera_config(
        dir.path(),
        "vivid",
        "format = \"yuyv\"\nwidth = 700\nheight = 500\n",
        &broker.url(),
        metrics,
    );
    set_pattern(BLUE);
    let daemon = Daemon::start(&config);
    wait_predictions(&consumer, &daemon, "cam0", 5);
    let log = daemon.log();
    let nearest = log
        .lines()
        .find(|l| l.contains("using the nearest it offers"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(nearest.contains("requested=700x500"), "{nearest}");
    let size = nearest.split("nearest=").nth(1).unwrap().split(' ').next();
    let (w, h) = size.unwrap().split_once('x').unwrap();
    assert!(
        log.contains(&format!("width={w} height={h}")),
        "{nearest}\n{log}"
    );
    assert!(labels(&consumer, "cam0").iter().all(|l| l == "blue"));
    assert!(daemon.terminate(Duration::from_secs(20)).success());
}

#[test]
#[ignore = "needs the vivid driver: run by scripts/vm-test.sh"]
fn an_unplugged_camera_is_retried_counted_and_streams_again_when_it_is_back() {
    let camera = "format = \"yuyv\"\nwidth = 320\nheight = 180\nfps = 15\n";
    set_pattern(GREEN);
    let Rig {
        daemon,
        consumer,
        metrics,
        broker: _broker,
        dir: _dir,
    } = Rig::start(|dir, broker, metrics| camera_config(dir, "vivid", camera, broker, metrics));
    wait_predictions(&consumer, &daemon, "cam0", 5);
    assert_eq!(SensorCounters::scrape(metrics, "cam0").reconnects, 0);

    let mut unplug = platform("vivid", "vivid.0", "unbind");
    assert!(
        wait_until(WAIT, || SensorCounters::scrape(metrics, "cam0").reconnects
            >= 2),
        "{}",
        daemon.log()
    );
    assert!(unplug.wait().unwrap().success());
    // Meanwhile the other sensor carries on.
    let before = labels(&consumer, "cam0");
    assert!(before.iter().all(|l| l == "green"), "{before:?}");
    let during = before.len();
    wait_predictions(&consumer, &daemon, "serial0", 20);
    assert!(labels(&consumer, "cam0").len() <= during + 1);

    assert!(platform("vivid", "vivid.0", "bind")
        .wait()
        .unwrap()
        .success());
    // The driver comes back with its default pattern, and it may stream before it is set again.
    set_pattern(GREEN);
    let resumed = wait_until(WAIT, || {
        let l = labels(&consumer, "cam0");
        l.len() > during && l.iter().rev().take_while(|x| *x == "green").count() >= 5
    });
    assert!(
        resumed,
        "{:?}\n{}",
        runs(&labels(&consumer, "cam0")),
        daemon.log()
    );
    assert!(daemon.log_contains("Sensor lost; reconnecting"));
    let counters = SensorCounters::scrape(metrics, "cam0");
    assert!(counters.reconnects >= 2, "{counters:?}");
    assert!(daemon.terminate(Duration::from_secs(20)).success());
}

#[test]
#[ignore = "needs the v4l2loopback driver: run by scripts/vm-test.sh"]
fn mjpeg_from_a_loopback_camera_is_decoded_frame_by_frame() {
    // A camera that sends JPEG frames, as UVC webcams do: v4l2loopback fed by GStreamer (ffmpeg's
    // V4L2 output writes raw video only). Each frame is shorter than the driver's buffer, so
    // only the first `bytesused` bytes of a buffer are the frame.
    let frames = tempfile::tempdir().unwrap();
    let jpeg = frames.path().join("red.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=red:size=640x480",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        jpeg.to_str().unwrap(),
    ]);
    let location = format!("location={}", jpeg.display());
    let mut feeder = Command::new("gst-launch-1.0")
        .args(["-q", "multifilesrc", &location, "loop=true"])
        .args(["caps=image/jpeg,width=640,height=480,framerate=10/1", "!"])
        .args([
            "identity",
            "sync=true",
            "!",
            "v4l2sink",
            "device=/dev/video5",
        ])
        .spawn()
        .expect("gst-launch-1.0 (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good)");
    let camera = "format = \"mjpeg\"\nwidth = 640\nheight = 480\n";
    let rig =
        Rig::start(|dir, broker, metrics| camera_config(dir, "loopcam", camera, broker, metrics));
    wait_predictions(&rig.consumer, &rig.daemon, "cam0", 10);
    let log = rig.daemon.log();
    assert!(
        log.contains("card=loopcam") && log.contains("format=JPEG"),
        "{log}"
    );
    let seen = labels(&rig.consumer, "cam0");
    assert!(seen.iter().all(|l| l == "red"), "{seen:?}");
    let counters = SensorCounters::scrape(rig.metrics, "cam0");
    assert_eq!(counters.errors, 0, "{counters:?}");
    let _ = feeder.kill();
    let _ = feeder.wait();
}

/// A device with the tone model fed by the loopback's capture side (`mic0`, with `buffer_ms`).
fn audio_config(dir: &Path, buffer_ms: u32, broker: &str, metrics: u16) -> PathBuf {
    let body = format!(
        r#"
[[models]]
id = "tone"
path = "{}"
preprocess = {{ type = "audio", gain = 1.0 }}
postprocess = {{ type = "classify", top_k = 1, labels = "{}" }}

[[sensors]]
id = "mic0"
model = "tone"
type = "audio"
device = "{CAPTURE}"
sample_rate = 16000
window = 1024
hop = 512
buffer_ms = {buffer_ms}
queue = {{ capacity = 8, overflow = "drop_oldest" }}
{}
[mqtt]
broker = "{broker}"
reconnect_min_ms = 100
reconnect_max_ms = 1000
"#,
        repo("models/tone.onnx").display(),
        repo("models/tone.labels").display(),
        metrics_toml(metrics),
    );
    write_config(dir, "edgeinfer.toml", &body)
}

/// Writes 3 s each of 300 Hz, 1 kHz and 3 kHz (the tone model's low, mid and high) as a WAV file.
fn tones(dir: &Path) -> PathBuf {
    let wav = dir.join("tones.wav");
    let sine = |f: u32| format!("sine=frequency={f}:sample_rate=16000:duration=3");
    let (a, b, c) = (sine(300), sine(1000), sine(3000));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &a,
        "-f",
        "lavfi",
        "-i",
        &b,
        "-f",
        "lavfi",
        "-i",
        &c,
        "-filter_complex",
        "[0][1][2]concat=n=3:v=0:a=1,volume=0.5",
        "-ac",
        "1",
        "-c:a",
        "pcm_s16le",
        wav.to_str().unwrap(),
    ]);
    wav
}

/// Waits until the daemon captures from `mic0` (the loopback drops what is played while nobody
/// captures).
fn wait_capturing(daemon: &Daemon, metrics: u16) {
    assert!(
        wait_until(WAIT, || SensorCounters::read(metrics, "mic0")
            .is_some_and(|c| c.inferred >= 3)),
        "{}",
        daemon.log()
    );
}

#[test]
#[ignore = "needs the snd-aloop driver: run by scripts/vm-test.sh"]
fn audio_from_the_loopback_card_follows_the_tones_played_into_it() {
    let rig = Rig::audio();
    let wav = tones(rig.dir.path());
    run("aplay", &["-q", "-D", PLAYBACK, wav.to_str().unwrap()]);
    assert!(
        wait_until(WAIT, || labels(&rig.consumer, "mic0")
            .iter()
            .rev()
            .take_while(|l| *l == "silence")
            .count()
            >= 5),
        "{:?}\n{}",
        runs(&labels(&rig.consumer, "mic0")),
        rig.daemon.log()
    );
    let all = labels(&rig.consumer, "mic0");
    assert_eq!(
        sequence(&all, &["low", "mid", "high"]),
        ["low", "mid", "high"],
        "{all:?}"
    );
    // 3 s of each at 31.25 windows/s: most windows of each tone are there.
    for tone in ["low", "mid", "high"] {
        let n = all.iter().filter(|l| *l == tone).count();
        assert!(n >= 60, "{n} windows of {tone}: {all:?}");
    }
    let counters = SensorCounters::scrape(rig.metrics, "mic0");
    assert_eq!(counters.reconnects, 0, "{counters:?}");
    assert!(rig.daemon.terminate(Duration::from_secs(20)).success());
}

#[test]
#[ignore = "needs the snd-aloop driver: run by scripts/vm-test.sh"]
fn an_audio_overrun_is_recovered_in_place_and_counted_not_reopened() {
    let rig = Rig::audio();
    // Under emulation the stream may already have overrun while starting: only what follows
    // the stop counts here.
    let before = SensorCounters::scrape(rig.metrics, "mic0");
    assert_eq!(before.reconnects, 0, "{before:?}");

    // The whole daemon stopped for 2 s, as a starved board would be: the card's buffer overflows.
    signal(rig.daemon.pid(), "STOP");
    std::thread::sleep(Duration::from_secs(2));
    signal(rig.daemon.pid(), "CONT");
    assert!(
        wait_until(WAIT, || SensorCounters::scrape(rig.metrics, "mic0")
            .overruns
            > before.overruns),
        "{}",
        rig.daemon.log()
    );
    wait_predictions(&rig.consumer, &rig.daemon, "mic0", 20);
    let after = SensorCounters::scrape(rig.metrics, "mic0");
    assert_eq!(after.reconnects, 0, "{after:?}\n{}", rig.daemon.log());
    // About 2 s at 16 kHz were lost, less what the card's buffer held.
    let lost = after.overruns - before.overruns;
    assert!(lost >= 8_000, "{lost} frames lost: {after:?}");
    assert!(
        rig.daemon.log_contains("Audio input overran"),
        "{}",
        rig.daemon.log()
    );
    assert!(
        !rig.daemon.log_contains("Sensor lost"),
        "{}",
        rig.daemon.log()
    );
    assert!(rig.daemon.terminate(Duration::from_secs(20)).success());
}

#[test]
#[ignore = "needs the snd-aloop driver: run by scripts/vm-test.sh"]
fn an_audio_device_that_goes_away_is_reopened_with_backoff_and_counted() {
    let rig = Rig::audio();

    let mut unplug = platform("snd_aloop", "snd_aloop.0", "unbind");
    assert!(
        wait_until(WAIT, || SensorCounters::scrape(rig.metrics, "mic0")
            .reconnects
            >= 2),
        "{}",
        rig.daemon.log()
    );
    assert!(unplug.wait().unwrap().success());
    assert!(
        rig.daemon.log_contains("Sensor lost; reconnecting"),
        "{}",
        rig.daemon.log()
    );

    assert!(platform("snd_aloop", "snd_aloop.0", "bind")
        .wait()
        .unwrap()
        .success());
    wait_predictions(&rig.consumer, &rig.daemon, "mic0", 10);
    let counters = SensorCounters::scrape(rig.metrics, "mic0");
    assert!(counters.reconnects >= 2, "{counters:?}");
    assert!(rig.daemon.terminate(Duration::from_secs(20)).success());
}
