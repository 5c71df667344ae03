//! `camera` sensors: V4L2 capture devices, delivering RGB images.
//!
//! This adapter serves cameras that the kernel exposes as V4L2 video capture nodes producing
//! MJPEG or YUYV: USB (UVC) webcams and industrial cameras, and Jetson CSI cameras. Raspberry Pi
//! Camera Module 3 and later are served by libcamera only (their raw Bayer output goes through
//! the Pi's ISP, which plain V4L2 capture does not drive), so they are not supported here: a
//! `command` sensor running `rpicam-vid` serves them (`sensor::command`).
//!
//! The device is opened by the capture loop's `connect`, by path (`/dev/video0`) or by the card
//! name the driver reports; when it goes away (unplugged, USB reset) `next_payload` reports it
//! lost and the capture loop reopens it with backoff.

mod decode;
mod device;
mod yuyv;

pub use decode::{decode_mjpeg, with_huffman_tables, DecodeError};
pub use device::{Camera, DeviceError, Encoding, Negotiated, RawFrame};
pub use yuyv::decode_yuyv;

use super::{FrameSource, Next, SensorError};
use crate::config::CameraConfig;
use crate::frame::Payload;
use image::RgbImage;
use std::time::Duration;

/// Longest wait for a frame before `next_payload` returns `Next::Idle`, so that the capture loop
/// notices shutdown.
const READ_TIMEOUT: Duration = Duration::from_millis(250);

/// A V4L2 camera, opened by the capture loop and reopened when it goes away.
pub struct CameraSource {
    config: CameraConfig,
    camera: Option<Camera>,
}

impl CameraSource {
    /// A camera source; the device is opened by `connect`.
    pub fn new(config: CameraConfig) -> Self {
        Self {
            config,
            camera: None,
        }
    }

    fn disconnect(&mut self) {
        if let Some(camera) = self.camera.take() {
            camera.close();
        }
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Decodes one frame of the negotiated format to RGB.
pub fn decode_frame(format: Negotiated, data: &[u8]) -> Result<RgbImage, DecodeError> {
    match format.encoding {
        Encoding::Mjpeg => decode_mjpeg(data),
        Encoding::Yuyv => decode_yuyv(data, format.width, format.height, format.bytes_per_line),
    }
}

impl FrameSource for CameraSource {
    fn connect(&mut self) -> Result<(), SensorError> {
        self.disconnect();
        let camera = Camera::open(&self.config, READ_TIMEOUT)
            .map_err(|e| SensorError::Lost(e.to_string()))?;
        self.camera = Some(camera);
        Ok(())
    }

    fn next_payload(&mut self) -> Result<Next, SensorError> {
        let device = &self.config.device;
        let Some(camera) = self.camera.as_mut() else {
            return Err(SensorError::Lost(format!("{device}: not open")));
        };
        let format = camera.format();
        let decoded = match camera.next_frame() {
            Ok(None) => return Ok(Next::Idle),
            Ok(Some(frame)) if frame.corrupt => Err(SensorError::Item(format!(
                "{device}: the driver marked a frame as damaged"
            ))),
            Ok(Some(frame)) => decode_frame(format, frame.data)
                .map_err(|e| SensorError::Item(format!("{device}: {e}"))),
            Err(e) => {
                self.disconnect();
                return Err(SensorError::Lost(e.to_string()));
            }
        };
        decoded.map(|image| Next::frame(Payload::Image(image)))
    }

    /// A camera has no beginning to go back to.
    fn rewind(&mut self) -> Result<(), SensorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PixelFormat;

    fn config(device: &str) -> CameraConfig {
        CameraConfig {
            device: device.to_string(),
            format: PixelFormat::Auto,
            width: 640,
            height: 480,
            fps: Some(15),
            buffers: 4,
        }
    }

    #[test]
    fn a_missing_device_is_lost_with_a_clear_message() {
        let mut source = CameraSource::new(config("/dev/video97"));
        match source.connect() {
            Err(SensorError::Lost(message)) => assert_eq!(
                message,
                "/dev/video97: no such device (is the camera plugged in?)"
            ),
            other => panic!("expected Lost, got {other:?}"),
        }
        assert!(matches!(source.next_payload(), Err(SensorError::Lost(_))));
    }

    #[test]
    fn frames_decode_by_their_negotiated_encoding() {
        let yuyv = Negotiated {
            encoding: Encoding::Yuyv,
            width: 2,
            height: 1,
            bytes_per_line: 4,
        };
        let img = decode_frame(yuyv, &[235, 128, 16, 128]).expect("decodes");
        assert_eq!(img.as_raw(), &[255, 255, 255, 0, 0, 0]);
        let mjpeg = Negotiated {
            encoding: Encoding::Mjpeg,
            ..yuyv
        };
        assert!(matches!(
            decode_frame(mjpeg, &[235, 128, 16, 128]),
            Err(DecodeError::NotJpeg)
        ));
    }
}
