//! Live audio input end to end: the daemon captures from an ALSA PCM through cpal, cuts windows
//! (resampling when the device runs at another rate) and the identity model publishes each
//! window as it was handed to the model, read back from the outbox the uplink publishes from.
//!
//! There is no sound card here: each test writes an ALSA configuration of its own (passed to the
//! daemon in `ALSA_CONFIG_PATH`) with a `file` PCM whose capture side reads a raw file through a
//! `null` slave. cpal lists it through its `hint` and captures the file's bytes exactly, faster
//! than real time. The PCM accepts any format, rate and channel count, so the file is written in
//! the config the daemon picks for the request: f32 (cpal's first choice), at `sample_rate` or at
//! the forced `device_rate`, with the configured channels; the daemon's log line confirms it.

use crate::support::*;
use serde_json::Value;
use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Name of the test PCM, as the daemon's config names it.
const PCM: &str = "edgeinfer_test";

/// Writes an ALSA configuration defining `PCM`, capturing `raw`.
fn alsa_config(dir: &Path, raw: &Path) -> PathBuf {
    let path = dir.join("asound.conf");
    let text = format!(
        r#"pcm.{PCM} {{
    type file
    slave {{ pcm {{ type null }} }}
    file "/dev/null"
    infile "{}"
    format "raw"
    hint {{ show on description "edgeinfer test input" }}
}}
"#,
        raw.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes interleaved samples as raw little-endian f32.
fn write_f32(path: &Path, samples: &[f32]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A config with the identity model (`x` of `[1, window]`) fed by one audio sensor `mic0`;
/// `sensor` holds the sensor's type-specific keys.
fn echo_config(dir: &Path, broker: &str, window: usize, sensor: &str) -> PathBuf {
    let body = format!(
        r#"
[[models]]
id = "echo"
path = "{model}"
input_shapes = {{ x = [1, {window}] }}
preprocess = {{ type = "audio" }}
postprocess = {{ type = "raw", max_values = {window} }}

[[sensors]]
id = "mic0"
model = "echo"
type = "audio"
window = {window}
queue = {{ capacity = 4096, overflow = "block" }}
{sensor}

[mqtt]
broker = "{broker}"
reconnect_min_ms = 100
reconnect_max_ms = 1000
"#,
        model = repo("models/echo.onnx").display(),
    );
    write_config(dir, "edgeinfer.toml", &body)
}

/// Captures `samples` (interleaved f32) from the file PCM into the echo model, `window` samples
/// every `hop`, with `format` keys (rates, channels) in the sensor, until window `count - 1` is
/// stored; see [`run_for_windows`].
fn capture_windows(
    dir: &Path,
    samples: &[f32],
    format: &str,
    (window, hop): (usize, usize),
    count: u64,
) -> (Vec<(u64, Vec<f32>)>, String) {
    let raw = dir.join("capture.f32");
    write_f32(&raw, samples);
    let alsa = alsa_config(dir, &raw);
    let broker = Broker::start();
    let consumer = Recorder::consumer(broker.port, "edgeinfer/t1/predictions/#");
    let sensor = format!("device = \"{PCM}\"\n{format}\nhop = {hop}\nbuffer_ms = 60000");
    let config = echo_config(dir, &broker.url(), window, &sensor);
    run_for_windows(&config, &alsa, &consumer, count)
}

/// Runs the daemon until windows `0..count` are stored, stops it, and returns those windows by
/// frame sequence number: the ones published to `consumer` and the ones still in the outbox.
///
/// The test PCM delivers samples as fast as they are read, so the daemon produces windows far
/// faster than real time without end; the test stops it once it has what it checks.
fn run_for_windows(
    config: &Path,
    alsa: &Path,
    consumer: &Recorder,
    count: u64,
) -> (Vec<(u64, Vec<f32>)>, String) {
    let daemon = Daemon::start_with_env(config, &[("ALSA_CONFIG_PATH", alsa.as_os_str())]);
    let last = format!("frame={} ", count - 1);
    let stored = wait_until(Duration::from_secs(90), || {
        daemon
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Prediction stored") && l.contains(&last))
    });
    let log = daemon.log();
    assert!(stored, "window {} never stored:\n{log}", count - 1);
    assert!(daemon.terminate(Duration::from_secs(20)).success());
    let dir = config.parent().unwrap();
    let outbox = edgeinfer::outbox::Outbox::open(
        &dir.join("state/outbox"),
        &edgeinfer::config::OutboxConfig::default(),
    )
    .unwrap();
    let published = consumer.json().into_iter().map(|(_, v)| v);
    let pending = outbox
        .pending(&mut edgeinfer::outbox::Cursor::all(), 1_000_000)
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap());
    let mut windows: Vec<(u64, Vec<f32>)> = published
        .chain(pending)
        .map(|v| {
            let values = v["result"]["outputs"]["y"]["values"]
                .as_array()
                .unwrap_or_else(|| panic!("raw output y expected: {v}"))
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["frame_seq"].as_u64().unwrap(), values)
        })
        .filter(|(seq, _)| *seq < count)
        .collect();
    windows.sort_by_key(|(seq, _)| *seq);
    windows.dedup_by_key(|(seq, _)| *seq);
    let seqs: Vec<u64> = windows.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..count).collect::<Vec<_>>(), "{log}");
    (windows, log)
}

/// Speech from espeak-ng as 16 kHz mono 16-bit samples.
fn speech_16k(dir: &Path) -> Vec<i16> {
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.s16");
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg("testing the live audio input, one two three")
        .status()
        .expect("espeak-ng must be installed");
    assert!(status.success());
    let status = Command::new("sox")
        .arg(&wav)
        .args([
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
        ])
        .arg(&raw)
        .status()
        .expect("sox must be installed");
    assert!(status.success());
    std::fs::read(&raw)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn windows_at_the_device_rate_are_the_captured_samples_exactly() {
    // Small windows keep each message under the test consumer's 10 KiB packet limit.
    const WINDOW: usize = 256;
    const HOP: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let speech = speech_16k(dir.path());
    assert!(speech.len() > 16_000, "{}", speech.len());
    assert!(
        speech.iter().any(|&s| s.unsigned_abs() > 3000),
        "speech is too quiet"
    );
    let expected: Vec<f32> = speech.iter().map(|&s| f32::from(s) / 32768.0).collect();
    // Padded with a second of silence so that the PCM does not run dry early.
    let mut samples = expected.clone();
    samples.resize(expected.len() + 16_000, 0.0);
    let count = ((expected.len() - WINDOW) / HOP + 1) as u64;
    let (got, log) = capture_windows(
        dir.path(),
        &samples,
        "sample_rate = 16000\nchannels = 1",
        (WINDOW, HOP),
        count,
    );
    assert!(log.contains("Audio input opened"), "{log}");
    assert!(
        log.contains("format=f32") && log.contains("rate=16000"),
        "{log}"
    );
    assert!(
        !log.contains("resampled_to=16000"),
        "no resampling expected:\n{log}"
    );

    let mut worst = 0.0f32;
    for (seq, values) in &got {
        let start = *seq as usize * HOP;
        assert_eq!(values.len(), WINDOW);
        for (i, (a, b)) in values
            .iter()
            .zip(&expected[start..start + WINDOW])
            .enumerate()
        {
            let error = (a - b).abs();
            assert!(error <= 1e-6, "window {seq} sample {i}: {a} != {b}");
            worst = worst.max(error);
        }
    }
    eprintln!("native rate: {} windows, max error {worst:e}", got.len());
}

/// The test signal: two sines well below 8 kHz, one per channel, at time `t` seconds.
fn left(t: f64) -> f64 {
    0.5 * (TAU * 440.0 * t).sin()
}

fn right(t: f64) -> f64 {
    0.3 * (TAU * 1_250.0 * t + 0.5).sin() + 0.1 * (TAU * 3_100.0 * t).sin()
}

#[test]
fn a_44k1_stereo_device_is_mixed_down_and_resampled_in_step_with_time() {
    const WINDOW: usize = 256;
    const HOP: usize = 128;
    const SECONDS: f64 = 2.0;
    let dir = tempfile::tempdir().unwrap();
    let frames = (SECONDS * 44_100.0) as usize;
    let mut samples = Vec::with_capacity(2 * (frames + 44_100));
    for i in 0..frames {
        let t = i as f64 / 44_100.0;
        samples.push(left(t) as f32);
        samples.push(right(t) as f32);
    }
    samples.resize(2 * (frames + 44_100), 0.0);
    // Windows that end inside the signal.
    let count = ((SECONDS * 16_000.0) as usize - WINDOW) / HOP + 1;
    let (got, log) = capture_windows(
        dir.path(),
        &samples,
        "sample_rate = 16000\ndevice_rate = 44100\nchannels = 2",
        (WINDOW, HOP),
        count as u64,
    );
    assert!(
        log.contains("format=f32") && log.contains("rate=44100") && log.contains("channels=2"),
        "{log}"
    );
    assert!(log.contains("resampled_to=16000"), "{log}");

    // The resampler's filter spans a few hundred samples: windows within 50 ms of the signal
    // switching on (t = 0) or off (t = SECONDS) hold its response to those edges.
    const EDGE: usize = 800;
    let end = (SECONDS * 16_000.0) as usize;
    let inside = |seq: u64| {
        let start = seq as usize * HOP;
        start >= EDGE && start + WINDOW + EDGE <= end
    };
    let checked: Vec<_> = got.iter().filter(|(seq, _)| inside(*seq)).collect();
    assert!(checked.len() > 200, "{}", checked.len());
    let mut worst = 0.0f32;
    for (seq, values) in checked.iter().copied() {
        assert_eq!(values.len(), WINDOW);
        let start = *seq as usize * HOP;
        for (i, v) in values.iter().enumerate() {
            let t = (start + i) as f64 / 16_000.0;
            let expected = ((left(t) + right(t)) / 2.0) as f32;
            worst = worst.max((v - expected).abs());
        }
    }
    eprintln!(
        "44.1 kHz stereo -> 16 kHz mono: {} windows, max error {worst:e}",
        got.len() - 2
    );
    assert!(worst < 1e-4, "max error {worst}");
}

#[test]
fn an_unknown_device_is_retried_with_the_available_inputs_listed() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("capture.f32");
    write_f32(&raw, &[0.0; 16_000]);
    let alsa = alsa_config(dir.path(), &raw);
    let broker = Broker::start();
    let metrics = free_port();
    let config = echo_config(
        dir.path(),
        &broker.url(),
        512,
        &format!(
            "device = \"no_such_mic\"\nsample_rate = 16000\nhop = 512\n{}",
            metrics_toml(metrics)
        ),
    );
    let daemon = Daemon::start_with_env(&config, &[("ALSA_CONFIG_PATH", alsa.as_os_str())]);
    // The capture loop retries (500 ms, then 1 s): a second attempt shows it is not fatal.
    let retried = wait_until(Duration::from_secs(20), || {
        SensorCounters::read(metrics, "mic0").is_some_and(|c| c.reconnects >= 2)
    });
    let log = daemon.log();
    assert!(retried, "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("Sensor unavailable; will retry"))
        .unwrap();
    assert!(line.contains("no audio input named"), "{line}");
    assert!(line.contains("no_such_mic"), "{line}");
    assert!(
        line.contains(&format!("available inputs: {PCM} (edgeinfer test input)")),
        "{line}"
    );
    assert!(daemon.terminate(Duration::from_secs(20)).success());
}
