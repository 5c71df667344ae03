use super::*;
use crate::frame::{Frame, Payload};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn header(kind: FrameKind) -> Header {
    Header {
        sensor: "s".into(),
        kind,
        source: "test".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        writer: "test".into(),
    }
}

fn frame(at_ms: u64, payload: Payload) -> Frame {
    Frame {
        sensor: Arc::from("s"),
        seq: 0,
        captured_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1000 + at_ms),
        payload,
    }
}

fn read_all(path: &Path) -> (Vec<(Duration, Payload)>, usize) {
    let mut r = RecordingReader::open(path).unwrap();
    let mut frames = Vec::new();
    let mut bad = 0;
    loop {
        match r.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break,
            Err(RecordingError::Frame { .. }) => bad += 1,
            Err(e) => panic!("{e}"),
        }
    }
    (frames, bad)
}

#[test]
fn every_payload_kind_round_trips_exactly_with_its_timing() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 7]));
    let cases = [
        (FrameKind::Image, Payload::Image(img)),
        (
            FrameKind::Audio,
            Payload::Audio {
                sample_rate: 16000,
                samples: vec![0.0, -1.0, 0.123_456_79, f32::MIN_POSITIVE],
            },
        ),
        (FrameKind::Record, Payload::Record(vec![1.5, -2e300, 0.1])),
    ];
    for (kind, payload) in cases {
        let path = dir.path().join(format!("{kind}.rec"));
        let mut w = RecordingWriter::create(&path, &header(kind)).unwrap();
        w.write(&frame(0, payload.clone())).unwrap();
        w.write(&frame(250, payload.clone())).unwrap();
        assert_eq!(w.frames(), 2);
        w.finish().unwrap();
        assert_eq!(read_header(&path).unwrap(), header(kind));
        let (frames, bad) = read_all(&path);
        assert_eq!(bad, 0);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, Duration::ZERO);
        assert_eq!(frames[1].0, Duration::from_millis(250));
        assert_eq!(format!("{:?}", frames[1].1), format!("{payload:?}"));
    }
}

#[test]
fn a_damaged_frame_is_skipped_and_a_cut_recording_replays_up_to_its_last_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let mut w = RecordingWriter::create(&path, &header(FrameKind::Record)).unwrap();
    for i in 0..3 {
        w.write(&frame(i * 10, Payload::Record(vec![i as f64])))
            .unwrap();
    }
    w.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Frames are 4 + 4 + 8 + 1 + 8 bytes; flip a value byte of the second one.
    let frame_len = 25;
    let second_value = bytes.len() - 2 * frame_len + 17;
    bytes[second_value] ^= 0xff;
    // And cut the third one short.
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, &bytes).unwrap();
    let (frames, bad) = read_all(&path);
    assert_eq!(bad, 1);
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0].1, Payload::Record(v) if v == &vec![0.0]));
}

#[test]
fn files_that_are_not_recordings_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.rec");
    for (bytes, reason) in [
        (&b"hello world, not a recording"[..], "wrong magic"),
        (&b"EIREC\0\0\x09\0\0\0\0"[..], "format version 9"),
        (&b"EIREC\0\0\x01\x05\0\0\0{bad}"[..], "bad header"),
        (&b"EIRE"[..], "too short"),
    ] {
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let err = read_header(&path).unwrap_err().to_string();
        assert!(err.contains(reason), "{err}");
    }
    let mut w = RecordingWriter::create(&path, &header(FrameKind::Audio)).unwrap();
    let err = w.write(&frame(0, Payload::Record(vec![1.0]))).unwrap_err();
    assert!(
        err.to_string()
            .contains("record frame in a recording of audio"),
        "{err}"
    );
}
