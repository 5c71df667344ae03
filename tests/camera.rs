//! Camera frames: the MJPEG and YUYV decoders against ffmpeg's own RGB conversion of the same
//! frames (fixtures made by ffmpeg at test time), and a daemon whose camera is missing: it keeps
//! retrying with one clear log line per attempt while its other sensors carry on.

use crate::support::*;
use edgeinfer::frame::Payload;
use edgeinfer::jpeg;
use edgeinfer::sensor::camera::{decode_mjpeg, decode_yuyv, with_huffman_tables};
use edgeinfer::sensor::replay::{split_jpeg_frames, ImageReplay};
use edgeinfer::sensor::{FrameSource, Next};
use image::RgbImage;
use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const W: u32 = 320;
const H: u32 = 240;
const FRAMES: usize = 3;

/// Runs ffmpeg with `args`; fails the test with a clear message when ffmpeg is not installed.
/// Three frames of the test source in pixel format `pix_fmt`, encoded and written as `output`
/// (ffmpeg's output options and file name) says.
fn ffmpeg_source(pix_fmt: &str, output: &[&str]) {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        SOURCE,
        "-frames:v",
        "3",
        "-pix_fmt",
        pix_fmt,
    ];
    args.extend(output);
    ffmpeg(&args);
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need ffmpeg on PATH (apt-get install ffmpeg): {e}")
        });
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A few frames of ffmpeg's `testsrc2` pattern (moving colour bars, gradients and text).
const SOURCE: &str = "testsrc2=size=320x240:rate=1";

/// Frames of a raw rgb24 file.
fn rgb_frames(path: &Path) -> Vec<RgbImage> {
    let data = std::fs::read(path).unwrap();
    let size = (W * H * 3) as usize;
    assert_eq!(data.len(), size * FRAMES, "{}", path.display());
    data.chunks_exact(size)
        .map(|c| RgbImage::from_raw(W, H, c.to_vec()).unwrap())
        .collect()
}

/// Mean and max absolute difference per channel.
#[derive(Debug)]
struct Diff {
    mean: [f64; 3],
    max: [u8; 3],
}

fn diff(ours: &[RgbImage], reference: &[RgbImage]) -> Diff {
    assert_eq!(ours.len(), reference.len());
    let (mut sum, mut max, mut n) = ([0u64; 3], [0u8; 3], 0u64);
    for (a, b) in ours.iter().zip(reference) {
        assert_eq!(a.dimensions(), b.dimensions());
        for (pa, pb) in a.pixels().zip(b.pixels()) {
            for c in 0..3 {
                let d = pa[c].abs_diff(pb[c]);
                sum[c] += u64::from(d);
                max[c] = max[c].max(d);
            }
            n += 1;
        }
    }
    Diff {
        mean: sum.map(|s| s as f64 / n as f64),
        max,
    }
}

fn assert_close(what: &str, d: &Diff, mean_limit: f64, max_limit: u8) {
    eprintln!(
        "{what}: mean abs error R/G/B {:.3}/{:.3}/{:.3}, max {}/{}/{}",
        d.mean[0], d.mean[1], d.mean[2], d.max[0], d.max[1], d.max[2]
    );
    for c in 0..3 {
        assert!(
            d.mean[c] < mean_limit && d.max[c] <= max_limit,
            "{what} differs from ffmpeg: {d:?}"
        );
    }
}

/// The frame with its DHT segments removed, as UVC cameras send it.
fn strip_dht(data: &[u8]) -> Vec<u8> {
    let mut out = data[..2].to_vec();
    for s in jpeg::segments(data, 0).map(|s| s.expect("a well-formed JPEG")) {
        match s.marker {
            jpeg::SOS => {
                out.extend_from_slice(&data[s.start..]);
                return out;
            }
            jpeg::DHT => {}
            _ => out.extend_from_slice(&data[s.start..s.end]),
        }
    }
    panic!("no scan in the fixture");
}

fn has_dht(data: &[u8]) -> bool {
    jpeg::segments(data, 0).any(|s| matches!(s, Ok(s) if s.marker == jpeg::DHT))
}

/// MJPEG frames (4:2:2, as UVC cameras send them, with ffmpeg's standard Huffman tables).
fn mjpeg_fixture(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mjpeg = dir.join("clip.mjpeg");
    ffmpeg_source(
        "yuvj422p",
        &[
            "-c:v",
            "mjpeg",
            "-huffman",
            "default",
            "-q:v",
            "3",
            "-f",
            "mjpeg",
            mjpeg.to_str().unwrap(),
        ],
    );
    let data = std::fs::read(&mjpeg).unwrap();
    (mjpeg, data)
}

/// ffmpeg's RGB decoding of an MJPEG file, with extra swscale flags.
fn ffmpeg_rgb(mjpeg: &Path, sws_flags: Option<&str>) -> Vec<RgbImage> {
    let rgb = mjpeg.with_extension(format!("{}.rgb", sws_flags.unwrap_or("default")));
    let mut args = vec!["-i", mjpeg.to_str().unwrap()];
    if let Some(flags) = sws_flags {
        args.extend(["-sws_flags", flags]);
    }
    args.extend(["-pix_fmt", "rgb24", "-f", "rawvideo", rgb.to_str().unwrap()]);
    ffmpeg(&args);
    rgb_frames(&rgb)
}

#[test]
fn mjpeg_decoding_matches_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let (mjpeg, data) = mjpeg_fixture(dir.path());
    let frames = split_jpeg_frames(&data);
    assert_eq!(frames.len(), FRAMES);
    let ours: Vec<RgbImage> = frames
        .iter()
        .map(|r| decode_mjpeg(&data[r.clone()]).unwrap())
        .collect();
    // The JPEG decoders agree on the YCbCr planes; they differ in how 4:2:2 chroma is brought to
    // full width. Ours (the `image` crate's) interpolates between chroma samples, as libjpeg
    // does. ffmpeg's default RGB conversion repeats each chroma sample, which moves sharp colour
    // edges of testsrc2 by up to ~100 levels over one pixel (mean ~2.5); with
    // `full_chroma_int` it interpolates too (bicubic rather than triangular), leaving a mean
    // error under 1 and a max of a few dozen levels on the sharpest edges.
    let interpolated = ffmpeg_rgb(&mjpeg, Some("accurate_rnd+full_chroma_int+bicubic"));
    assert_close(
        "MJPEG vs ffmpeg, interpolated chroma",
        &diff(&ours, &interpolated),
        1.0,
        48,
    );
    let default = ffmpeg_rgb(&mjpeg, None);
    assert_close("MJPEG vs ffmpeg, default", &diff(&ours, &default), 3.0, 128);
}

#[test]
fn mjpeg_without_huffman_tables_decodes_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = mjpeg_fixture(dir.path());
    let mut stripped_file = Vec::new();
    for range in split_jpeg_frames(&data) {
        let original = &data[range];
        assert!(has_dht(original), "ffmpeg wrote Huffman tables");
        let stripped = strip_dht(original);
        assert!(!has_dht(&stripped));
        assert!(matches!(
            with_huffman_tables(&stripped).unwrap(),
            Cow::Owned(_)
        ));
        assert_eq!(
            decode_mjpeg(&stripped).unwrap(),
            decode_mjpeg(original).unwrap()
        );
        stripped_file.extend_from_slice(&stripped);
    }

    // MJPEG file replay shares the decoder, so a file of table-less frames replays too.
    let path = dir.path().join("no-tables.mjpeg");
    std::fs::write(&path, &stripped_file).unwrap();
    let mut replay = ImageReplay::open(&path).unwrap();
    let mut replayed = 0;
    while let Next::Frame { payload, .. } = replay.next_payload().unwrap() {
        let Payload::Image(img) = payload else {
            panic!("image replay gave {payload:?}")
        };
        assert_eq!(img.dimensions(), (W, H));
        replayed += 1;
    }
    assert_eq!(replayed, FRAMES);
}

#[test]
fn yuyv_conversion_matches_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let yuyv = dir.path().join("clip.yuyv");
    let rgb = dir.path().join("clip_yuyv.rgb");
    ffmpeg_source("yuyv422", &["-f", "rawvideo", yuyv.to_str().unwrap()]);
    ffmpeg(&[
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuyv422",
        "-s",
        "320x240",
        "-i",
        yuyv.to_str().unwrap(),
        "-pix_fmt",
        "rgb24",
        "-f",
        "rawvideo",
        rgb.to_str().unwrap(),
    ]);
    let data = std::fs::read(&yuyv).unwrap();
    let size = (W * H * 2) as usize;
    assert_eq!(data.len(), size * FRAMES);
    let ours: Vec<RgbImage> = data
        .chunks_exact(size)
        .map(|f| decode_yuyv(f, W, H, W * 2).unwrap())
        .collect();
    let reference = rgb_frames(&rgb);
    // ffmpeg's fixed-point conversion comes out up to 3 levels below the exactly rounded BT.601
    // result (never above), by about 1 level on average in red.
    assert_close("YUYV vs ffmpeg", &diff(&ours, &reference), 1.5, 4);

    // The same frames with each line padded to a 64-byte multiple, as some drivers lay them out.
    let pitch = (W * 2).div_ceil(64) * 64 + 64;
    let padded: Vec<RgbImage> = data
        .chunks_exact(size)
        .map(|f| {
            let mut out = Vec::new();
            for line in f.chunks_exact((W * 2) as usize) {
                out.extend_from_slice(line);
                out.resize(out.len() + (pitch - W * 2) as usize, 0xAB);
            }
            decode_yuyv(&out, W, H, pitch).unwrap()
        })
        .collect();
    assert_eq!(padded, ours);
}

#[test]
fn a_missing_camera_is_retried_while_other_sensors_carry_on() {
    const ROWS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, ROWS);
    let body = format!(
        r#"{vibration}
[[models]]
id = "colour"
path = "{colour}"
input_shapes = {{ image = [1, 3, 64, 64] }}
preprocess = {{ type = "image", resize = [85, 64], crop = [64, 64] }}
postprocess = {{ type = "classify", top_k = 1, labels = "{labels}" }}

[[sensors]]
id = "cam0"
model = "colour"
type = "camera"
device = "/dev/video97"
{line}"#,
        vibration = vibration_model_toml("vibration", &repo("models/vibration.labels")),
        colour = repo("models/colour.onnx").display(),
        labels = repo("models/colour.labels").display(),
        line = line_sensor_toml("serial0", "vibration", &readings, None),
    );
    let metrics = free_port();
    let config = write_config(
        dir.path(),
        "edgeinfer.toml",
        &format!("{body}{}", metrics_toml(metrics)),
    );

    let daemon = Daemon::start(&config);
    let retry = "Sensor unavailable; will retry";
    // Attempts come 0.5 s, then 1 s apart: three within a few seconds.
    assert!(
        wait_until(Duration::from_secs(20), || {
            SensorCounters::read(metrics, "cam0").is_some_and(|c| c.reconnects >= 3)
        }),
        "camera retries not counted:\n{}",
        daemon.log()
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            SensorCounters::scrape(metrics, "serial0").inferred == ROWS as u64
        }),
        "line sensor predictions not all stored:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    let attempts: Vec<&str> = log.lines().filter(|l| l.contains(retry)).collect();
    for (i, line) in attempts.iter().enumerate() {
        assert!(line.contains("cam0"), "{line}");
        assert!(
            line.contains("/dev/video97: no such device"),
            "retry line does not name the device: {line}"
        );
        assert!(line.contains(&format!("attempt={}", i + 1)), "{line}");
    }
    // One line per attempt: nothing else mentions the device, and nothing spills onto
    // continuation lines.
    assert_eq!(
        log.lines().filter(|l| l.contains("/dev/video97")).count(),
        attempts.len(),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    let status = daemon.terminate(Duration::from_secs(10));
    assert!(status.success(), "{log}");
    assert_eq!(outbox_stats(dir.path()).counters.appended, ROWS as u64);
}
