//! The V4L2 device behind a camera sensor: finding it (by path or card name), negotiating pixel
//! format, size and frame rate, and streaming frames through memory-mapped buffers.

use crate::config::{CameraConfig, PixelFormat};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};
use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

const MJPG: FourCC = FourCC { repr: *b"MJPG" };
/// Some drivers name their (identical) MJPEG output "JPEG".
const JPEG: FourCC = FourCC { repr: *b"JPEG" };
const YUYV: FourCC = FourCC { repr: *b"YUYV" };

/// Linux `ENODEV`: the device went away (unplugged, USB reset).
const ENODEV: i32 = 19;
/// Linux `POLLIN`: data to read (a filled buffer to dequeue).
const POLLIN: i16 = 0x001;

/// Why the device cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device node does not exist (not plugged in, or renumbered).
    #[error("{device}: no such device (is the camera plugged in?)")]
    NotFound { device: String },
    /// No `/dev/video*` capture device reports this card name.
    #[error("no video capture device with card name \"{name}\" (capture devices present: {seen})")]
    NoCardNamed { name: String, seen: String },
    /// The node is not a single-planar capture device with streaming I/O (a metadata node, an
    /// output device, a multi-planar ISP pipeline).
    #[error("{device} ({card}) is not a V4L2 video capture device with streaming I/O")]
    NotCapture { device: String, card: String },
    /// The device does not offer the pixel format asked for.
    #[error("{device} does not offer {wanted}; it offers: {offered}")]
    NoFormat {
        device: String,
        wanted: &'static str,
        offered: String,
    },
    /// The driver replaced the requested pixel format by another one.
    #[error("{device}: asked for {wanted}, the driver chose {got}")]
    FormatRefused {
        device: String,
        wanted: String,
        got: String,
    },
    /// A system call on the device failed (ENODEV after an unplug, EIO, ...).
    #[error("{device}: {action}: {source}")]
    Io {
        device: String,
        action: &'static str,
        source: io::Error,
    },
}

/// How the frames of a stream are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JPEG image per frame.
    Mjpeg,
    /// Packed YUYV 4:2:2.
    Yuyv,
}

/// The format the driver settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Frame encoding.
    pub encoding: Encoding,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per line of an uncompressed frame (at least `2 * width` for YUYV).
    pub bytes_per_line: u32,
}

/// One frame as the driver filled it, borrowed from its mapped buffer until the next call.
pub struct RawFrame<'a> {
    /// The bytes the driver wrote.
    pub data: &'a [u8],
    /// The driver flagged the frame as damaged (lost USB packets, for instance).
    pub corrupt: bool,
}

/// An open camera, streaming.
///
/// Buffer ownership follows the driver's queue: between two calls of [`Camera::next_frame`] the
/// buffer of the last frame is held here and every other buffer is queued with the driver.
pub struct Camera {
    /// Path of the device node.
    path: PathBuf,
    /// The mapped buffers. They stay mapped, and the device open, for as long as the stream
    /// lives; the lifetime parameter of `Stream` is not tied to anything borrowed.
    stream: Stream<'static>,
    format: Negotiated,
    read_timeout: Duration,
    /// Streaming has been started (the first `Stream::next` queues every buffer and starts).
    started: bool,
    /// The buffer of the last frame is held here (not queued with the driver).
    holding: bool,
}

impl Camera {
    /// Opens the configured device, negotiates the format and frame rate, and maps `buffers`
    /// buffers. Streaming starts with the first [`Camera::next_frame`].
    ///
    /// `read_timeout` bounds how long `next_frame` waits for a frame.
    pub fn open(config: &CameraConfig, read_timeout: Duration) -> Result<Self, DeviceError> {
        let (path, device, card) = find(&config.device)?;
        let label = path.display().to_string();
        let io_err = |action: &'static str| {
            let device = label.clone();
            move |source: io::Error| DeviceError::Io {
                device,
                action,
                source,
            }
        };

        let offered = device
            .enum_formats()
            .map_err(io_err("listing pixel formats"))?;
        let offered: Vec<FourCC> = offered.iter().map(|d| d.fourcc).collect();
        let (fourcc, encoding) =
            choose_format(config.format, &offered).ok_or_else(|| DeviceError::NoFormat {
                device: label.clone(),
                wanted: match config.format {
                    PixelFormat::Auto => "MJPEG or YUYV",
                    PixelFormat::Mjpeg => "MJPEG",
                    PixelFormat::Yuyv => "YUYV",
                },
                offered: describe_fourccs(&offered),
            })?;

        let actual = device
            .set_format(&Format::new(config.width, config.height, fourcc))
            .map_err(io_err("setting the format"))?;
        if actual.fourcc != fourcc {
            return Err(DeviceError::FormatRefused {
                device: label,
                wanted: fourcc_name(fourcc),
                got: fourcc_name(actual.fourcc),
            });
        }
        if (actual.width, actual.height) != (config.width, config.height) {
            info!(
                device = %label,
                requested = %format_args!("{}x{}", config.width, config.height),
                nearest = %format_args!("{}x{}", actual.width, actual.height),
                "Camera does not offer the requested size; using the nearest it offers"
            );
        }
        let format = Negotiated {
            encoding,
            width: actual.width,
            height: actual.height,
            bytes_per_line: actual.stride.max(actual.width.div_ceil(2) * 4),
        };

        let fps = match config.fps {
            Some(fps) => match device.set_params(&Parameters::with_fps(fps)) {
                Ok(params) => Some(params.interval),
                Err(e) if e.raw_os_error() == Some(ENODEV) => {
                    return Err(io_err("setting the frame rate")(e))
                }
                Err(e) => {
                    // Some drivers have no frame-rate control; they run at their own rate.
                    warn!(device = %label, error = %e, requested = fps,
                        "Camera frame rate cannot be set; using the driver's");
                    None
                }
            },
            None => device.params().ok().map(|p| p.interval),
        };

        let mut stream: Stream<'static> =
            Stream::with_buffers(&device, Type::VideoCapture, config.buffers)
                .map_err(io_err("mapping capture buffers"))?;
        stream.set_timeout(read_timeout);

        info!(
            device = %label,
            card = %card,
            format = %fourcc_name(fourcc),
            width = format.width,
            height = format.height,
            frame_interval = %fps.map_or_else(|| "unknown".to_string(), |f| format!("{}/{} s", f.numerator, f.denominator)),
            "Camera opened"
        );
        Ok(Self {
            path,
            stream,
            format,
            read_timeout,
            started: false,
            holding: false,
        })
    }

    /// The negotiated format.
    pub fn format(&self) -> Negotiated {
        self.format
    }

    /// The next frame, or `None` when none arrived within the read timeout.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, DeviceError> {
        let device = &self.path;
        let io_err = |action: &'static str, source: io::Error| DeviceError::Io {
            device: device.display().to_string(),
            action,
            source,
        };
        if self.started && !self.holding {
            // Every buffer is queued with the driver (a wait timed out inside `Stream::next`,
            // after it had queued the held buffer). `Stream::next` would queue its last buffer a
            // second time, which drivers refuse, so take one back first and drop its frame.
            match CaptureStream::dequeue(&mut self.stream) {
                Ok(_) => self.holding = true,
                Err(e) if no_frame_yet(&e) => return Ok(None),
                Err(e) => return Err(io_err("waiting for a frame", e)),
            }
        }
        if self.holding {
            // Wait here rather than inside `Stream::next`, which re-queues the held buffer
            // before it waits.
            let timeout = i32::try_from(self.read_timeout.as_millis()).unwrap_or(i32::MAX);
            match self.stream.handle().poll(POLLIN, timeout) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
                Err(e) => return Err(io_err("waiting for a frame", e)),
            }
        }
        // The first call queues every buffer, starts streaming and waits for a frame.
        self.started = true;
        match CaptureStream::next(&mut self.stream) {
            Ok((buffer, meta)) => {
                self.holding = true;
                let used = (meta.bytesused as usize).min(buffer.len());
                let data = if used == 0 { buffer } else { &buffer[..used] };
                Ok(Some(RawFrame {
                    data,
                    corrupt: meta.flags.contains(BufferFlags::ERROR),
                }))
            }
            Err(e) if no_frame_yet(&e) => {
                self.holding = false;
                Ok(None)
            }
            Err(e) => Err(io_err("capturing a frame", e)),
        }
    }

    /// Stops streaming and releases the buffers and the device.
    ///
    /// `v4l` panics when it cannot stop a stream for any reason other than the device being
    /// gone; if that happens here the stream is leaked instead, with a warning, so that a
    /// misbehaving driver does not take down the capture thread.
    pub fn close(mut self) {
        match self.stream.stop() {
            Err(e) if e.raw_os_error() != Some(ENODEV) => {
                warn!(device = %self.path.display(), error = %e,
                    "Camera stream could not be stopped; leaving its buffers mapped");
                std::mem::forget(self);
            }
            _ => drop(self),
        }
    }
}

/// No frame is ready: the wait timed out, or a non-blocking dequeue found nothing.
fn no_frame_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Opens `device`: a path, or the card name of a capture device among `/dev/video*`. Returns the
/// node's path, the open device and its card name.
fn find(device: &str) -> Result<(PathBuf, Device, String), DeviceError> {
    if device.starts_with('/') || device.starts_with('.') {
        let path = PathBuf::from(device);
        let (dev, card, capture) = open_node(&path)?;
        if !capture {
            return Err(DeviceError::NotCapture {
                device: device.to_string(),
                card,
            });
        }
        return Ok((path, dev, card));
    }
    let mut seen = Vec::new();
    for path in video_nodes() {
        // Nodes that vanish or cannot be opened (busy, no permission) are not this camera.
        let Ok((dev, card, capture)) = open_node(&path) else {
            continue;
        };
        if !capture {
            continue;
        }
        if card.trim() == device.trim() {
            return Ok((path, dev, card));
        }
        seen.push(format!("{} \"{card}\"", path.display()));
    }
    Err(DeviceError::NoCardNamed {
        name: device.to_string(),
        seen: if seen.is_empty() {
            "none".to_string()
        } else {
            seen.join(", ")
        },
    })
}

/// Opens one node: the device, its card name, and whether it can stream video capture.
fn open_node(path: &Path) -> Result<(Device, String, bool), DeviceError> {
    let label = path.display().to_string();
    let dev = Device::with_path(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ENODEV) {
            DeviceError::NotFound {
                device: label.clone(),
            }
        } else {
            DeviceError::Io {
                device: label.clone(),
                action: "opening",
                source,
            }
        }
    })?;
    let caps = dev.query_caps().map_err(|source| DeviceError::Io {
        device: label,
        action: "querying capabilities",
        source,
    })?;
    let capture = caps
        .capabilities
        .contains(CapFlags::VIDEO_CAPTURE | CapFlags::STREAMING);
    Ok((dev, caps.card, capture))
}

/// `/dev/videoN` nodes in number order.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// The fourcc to ask for, given what the device offers: `Auto` prefers MJPEG (less USB bandwidth
/// per frame), then YUYV.
fn choose_format(wanted: PixelFormat, offered: &[FourCC]) -> Option<(FourCC, Encoding)> {
    let mjpeg = [MJPG, JPEG]
        .into_iter()
        .find(|f| offered.contains(f))
        .map(|f| (f, Encoding::Mjpeg));
    let yuyv = offered.contains(&YUYV).then_some((YUYV, Encoding::Yuyv));
    match wanted {
        PixelFormat::Auto => mjpeg.or(yuyv),
        PixelFormat::Mjpeg => mjpeg,
        PixelFormat::Yuyv => yuyv,
    }
}

fn fourcc_name(f: FourCC) -> String {
    String::from_utf8_lossy(&f.repr).trim_end().to_string()
}

fn describe_fourccs(offered: &[FourCC]) -> String {
    if offered.is_empty() {
        return "no formats".to_string();
    }
    offered
        .iter()
        .map(|&f| fourcc_name(f))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fourccs(names: &[&[u8; 4]]) -> Vec<FourCC> {
        names.iter().map(|n| FourCC::new(n)).collect()
    }

    #[test]
    fn auto_prefers_mjpeg_then_yuyv() {
        let both = fourccs(&[b"YUYV", b"MJPG"]);
        assert_eq!(
            choose_format(PixelFormat::Auto, &both),
            Some((MJPG, Encoding::Mjpeg))
        );
        assert_eq!(
            choose_format(PixelFormat::Yuyv, &both),
            Some((YUYV, Encoding::Yuyv))
        );
        let yuyv = fourccs(&[b"YUYV"]);
        assert_eq!(
            choose_format(PixelFormat::Auto, &yuyv),
            Some((YUYV, Encoding::Yuyv))
        );
        assert_eq!(choose_format(PixelFormat::Mjpeg, &yuyv), None);
        let jpeg = fourccs(&[b"JPEG"]);
        assert_eq!(
            choose_format(PixelFormat::Mjpeg, &jpeg),
            Some((JPEG, Encoding::Mjpeg))
        );
    }

    #[test]
    fn no_usable_format_lists_what_is_offered() {
        let offered = fourccs(&[b"NV12", b"RG10"]);
        assert_eq!(choose_format(PixelFormat::Auto, &offered), None);
        let err = DeviceError::NoFormat {
            device: "/dev/video0".into(),
            wanted: "MJPEG or YUYV",
            offered: describe_fourccs(&offered),
        };
        assert_eq!(
            err.to_string(),
            "/dev/video0 does not offer MJPEG or YUYV; it offers: NV12, RG10"
        );
    }

    #[test]
    fn missing_path_is_not_found() {
        let err = find("/dev/video-missing-for-test")
            .err()
            .expect("no such node");
        assert!(matches!(err, DeviceError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("no such device"), "{err}");
    }

    #[test]
    fn unknown_card_name_is_reported() {
        let err = find("No Such Camera 1234").err().expect("no such card");
        assert!(
            err.to_string()
                .starts_with("no video capture device with card name \"No Such Camera 1234\""),
            "{err}"
        );
    }
}
