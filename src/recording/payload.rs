//! Encoding of one frame's payload inside a recording.

use crate::frame::{FrameKind, Payload};
use std::io::Cursor;

const IMAGE: u8 = 1;
const AUDIO: u8 = 2;
const RECORD: u8 = 3;

/// Appends `payload` (kind byte first) to `out`.
pub(super) fn encode(payload: &Payload, out: &mut Vec<u8>) -> Result<(), String> {
    match payload {
        Payload::Image(img) => {
            out.push(IMAGE);
            out.extend_from_slice(&img.width().to_le_bytes());
            out.extend_from_slice(&img.height().to_le_bytes());
            let encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut *out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            image::ImageEncoder::write_image(
                encoder,
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| format!("cannot encode image: {e}"))?;
        }
        Payload::Audio {
            sample_rate,
            samples,
        } => {
            out.push(AUDIO);
            out.extend_from_slice(&sample_rate.to_le_bytes());
            for s in samples {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        Payload::Record(values) => {
            out.push(RECORD);
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Decodes a payload written by `encode`, checking that it is of `kind`.
pub(super) fn decode(bytes: &[u8], kind: FrameKind) -> Result<Payload, String> {
    let (&tag, rest) = bytes.split_first().ok_or("empty payload")?;
    let payload = match tag {
        IMAGE => {
            let (w, rest) = take_u32(rest)?;
            let (h, png) = take_u32(rest)?;
            let img = image::load(Cursor::new(png), image::ImageFormat::Png)
                .map_err(|e| format!("bad image: {e}"))?
                .to_rgb8();
            if (img.width(), img.height()) != (w, h) {
                return Err(format!(
                    "image is {}x{}, header says {w}x{h}",
                    img.width(),
                    img.height()
                ));
            }
            Payload::Image(img)
        }
        AUDIO => {
            let (sample_rate, rest) = take_u32(rest)?;
            if rest.len() % 4 != 0 {
                return Err("audio samples are not a whole number of f32".into());
            }
            let samples = rest
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Payload::Audio {
                sample_rate,
                samples,
            }
        }
        RECORD => {
            if rest.len() % 8 != 0 {
                return Err("record values are not a whole number of f64".into());
            }
            let values = rest
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect();
            Payload::Record(values)
        }
        other => return Err(format!("unknown payload kind {other}")),
    };
    if payload.kind() != kind {
        return Err(format!(
            "{} frame in a recording of {kind} frames",
            payload.kind()
        ));
    }
    Ok(payload)
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if bytes.len() < 4 {
        return Err("payload cut short".into());
    }
    let (head, rest) = bytes.split_at(4);
    Ok((
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        rest,
    ))
}
