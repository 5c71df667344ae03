//! `type = "command"`: a camera behind a program that writes frames to its standard output
//! (`rpicam-vid` for Raspberry Pi CSI cameras, `ffmpeg` for RTSP/IP cameras).

use super::kind::{live_queue, SensorFacts, SensorKind};
use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::Deserialize;

/// A program whose standard output is a stream of frames.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, run directly (no shell; the program is looked up in
    /// `PATH`). Environment variables can be set with `env`: `["env", "VAR=value", "prog", ...]`.
    pub command: Vec<String>,
    /// What the program writes.
    #[serde(default)]
    pub format: StreamFormat,
    /// Frame width in pixels: required for the raw formats, rejected for MJPEG (whose frames carry
    /// their own size).
    #[serde(default)]
    pub width: Option<u32>,
    /// Frame height in pixels, like `width`.
    #[serde(default)]
    pub height: Option<u32>,
    /// A program that writes nothing for this long is taken as hung: it is killed and started
    /// again.
    #[serde(default = "default_stall_timeout_ms")]
    pub stall_timeout_ms: u64,
}

/// The byte stream a command writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFormat {
    /// Concatenated JPEG images (`rpicam-vid --codec mjpeg -o -`, `ffmpeg ... -f mjpeg -`).
    #[default]
    Mjpeg,
    /// Raw frames of `width * height * 3` bytes, R G B per pixel (`ffmpeg ... -pix_fmt rgb24 -f
    /// rawvideo -`).
    Rgb24,
    /// Raw YUYV 4:2:2 frames of `width * height * 2` bytes (`-pix_fmt yuyv422 -f rawvideo -`).
    Yuyv,
}

impl StreamFormat {
    /// The format's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            StreamFormat::Mjpeg => "mjpeg",
            StreamFormat::Rgb24 => "rgb24",
            StreamFormat::Yuyv => "yuyv",
        }
    }
}

fn default_stall_timeout_ms() -> u64 {
    10_000
}

const STALL_TIMEOUTS: std::ops::RangeInclusive<u64> = 500..=600_000;
const SIZES: std::ops::RangeInclusive<u32> = 16..=8192;

impl SensorKind for CommandConfig {
    const TYPE: &'static str = "command";
}

impl SensorFacts for CommandConfig {
    // Like a camera, a command keeps only the latest frame.
    fn frame_kind(&self) -> Option<FrameKind> {
        Some(FrameKind::Image)
    }

    fn default_queue(&self) -> QueueConfig {
        live_queue(1)
    }

    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self.command.first().is_none_or(|p| p.trim().is_empty()) {
            errors.push(ConfigError::new(
                format!("{path}.command"),
                "must name a program, then its arguments: [\"prog\", \"arg\", ...]",
            ));
        }
        if !STALL_TIMEOUTS.contains(&self.stall_timeout_ms) {
            errors.push(ConfigError::new(
                format!("{path}.stall_timeout_ms"),
                format!(
                    "must be {}-{} ms",
                    STALL_TIMEOUTS.start(),
                    STALL_TIMEOUTS.end()
                ),
            ));
        }
        for (key, value) in [("width", self.width), ("height", self.height)] {
            let key_path = format!("{path}.{key}");
            match (self.format, value) {
                (StreamFormat::Mjpeg, Some(_)) => errors.push(ConfigError::new(
                    key_path,
                    "only for the raw formats (rgb24, yuyv); MJPEG frames carry their own size",
                )),
                (StreamFormat::Mjpeg, None) => {}
                (raw, None) => errors.push(ConfigError::new(
                    key_path,
                    format!("required for format = \"{}\"", raw.name()),
                )),
                (_, Some(v)) if !SIZES.contains(&v) => errors.push(ConfigError::new(
                    key_path,
                    format!("must be {}-{} pixels", SIZES.start(), SIZES.end()),
                )),
                (_, Some(_)) => {}
            }
        }
        if self.format == StreamFormat::Yuyv && self.width.is_some_and(|w| w % 2 != 0) {
            errors.push(ConfigError::new(
                format!("{path}.width"),
                "must be even for yuyv (two pixels share one chroma sample)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(keys: &str) -> CommandConfig {
        toml::from_str(keys).expect("parses")
    }

    fn errors(keys: &str) -> Vec<String> {
        let mut errors = Vec::new();
        parse(keys).validate("sensors[0]", &mut errors);
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn mjpeg_is_the_default_with_a_ten_second_stall_timeout() {
        let c = parse(r#"command = ["rpicam-vid", "-t", "0", "--codec", "mjpeg", "-o", "-"]"#);
        assert_eq!(
            (c.format, c.stall_timeout_ms),
            (StreamFormat::Mjpeg, 10_000)
        );
        assert_eq!((c.width, c.height), (None, None));
        assert!(errors(r#"command = ["ffmpeg"]"#).is_empty());
        let queue = c.default_queue();
        assert_eq!(queue.capacity, 1);
        assert_eq!(queue.overflow, super::super::Overflow::DropOldest);
    }

    #[test]
    fn every_mistake_is_reported_with_its_key_path() {
        assert_eq!(
            errors("command = []\nstall_timeout_ms = 10\nwidth = 64"),
            [
                "sensors[0].command: must name a program, then its arguments: [\"prog\", \"arg\", ...]",
                "sensors[0].stall_timeout_ms: must be 500-600000 ms",
                "sensors[0].width: only for the raw formats (rgb24, yuyv); MJPEG frames carry their own size",
            ]
        );
        assert_eq!(
            errors("command = [\" \"]\nformat = \"yuyv\"\nwidth = 63"),
            [
                "sensors[0].command: must name a program, then its arguments: [\"prog\", \"arg\", ...]",
                "sensors[0].height: required for format = \"yuyv\"",
                "sensors[0].width: must be even for yuyv (two pixels share one chroma sample)",
            ]
        );
        assert_eq!(
            errors("command = [\"ffmpeg\"]\nformat = \"rgb24\"\nwidth = 8\nheight = 9000"),
            [
                "sensors[0].width: must be 16-8192 pixels",
                "sensors[0].height: must be 16-8192 pixels",
            ]
        );
        assert!(
            errors("command = [\"ffmpeg\"]\nformat = \"rgb24\"\nwidth = 63\nheight = 17")
                .is_empty()
        );
    }
}
