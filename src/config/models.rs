//! `[[models]]`: an ONNX file plus how frames become its input and its output becomes a result.

use super::{check_file, check_id, ConfigError};
use crate::frame::FrameKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One model and its pre- and post-processing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Id that sensors refer to.
    pub id: String,
    /// The .onnx file.
    pub path: PathBuf,
    /// Expected sha256 of the file (hex); checked at load when given.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Concrete shapes for inputs with dynamic dimensions, by input name.
    #[serde(default)]
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// `"auto"` (default: accelerators that are present, then tract, then onnxruntime on the CPU,
    /// falling back when one cannot load the model) or one backend by name, which must then work.
    #[serde(default = "auto")]
    pub backend: String,
    /// With `backend = "auto"`: time every available backend on the model at start-up and keep
    /// the fastest (the table is logged), instead of the first that loads.
    #[serde(default)]
    pub auto_tune: bool,
    /// Intra-op threads; the backend's default (all cores) when absent.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Input that frames feed; needed only when the model has several inputs that are neither
    /// constant nor recurrent.
    #[serde(default)]
    pub frame_input: Option<String>,
    /// Inputs held at one value for the model's lifetime (e.g. `sr = 16000`); backends may fold them.
    #[serde(default)]
    pub constant_inputs: BTreeMap<String, f64>,
    /// Inputs fed from an output of the previous run on the same sensor (zeros at first),
    /// as `input = "output"`: the state of recurrent models such as voice activity detectors.
    #[serde(default)]
    pub recurrent_inputs: BTreeMap<String, String>,
    /// onnxruntime options (used by the `ort-*` backends).
    #[serde(default)]
    pub ort: OrtOptions,
    /// How a frame becomes the input tensor.
    pub preprocess: PreprocessConfig,
    /// How the output tensors become the published result.
    pub postprocess: PostprocessConfig,
}

fn auto() -> String {
    "auto".into()
}

/// Every backend name the config accepts; whether one is compiled in and usable is decided at start-up.
pub const BACKEND_NAMES: &[&str] = &[
    "auto",
    "tract",
    "ort-cpu",
    "ort-cuda",
    "ort-tensorrt",
    "ort-openvino",
    "ort-nnapi",
];

/// Options of the onnxruntime execution providers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrtOptions {
    /// GPU index for CUDA and TensorRT.
    pub device_id: u32,
    /// Allow half precision (TensorRT; OpenVINO GPU).
    pub fp16: bool,
    /// Folder where TensorRT keeps built engines, so that a restart does not rebuild them.
    pub trt_engine_cache: Option<PathBuf>,
    /// OpenVINO device: "CPU", "GPU", "NPU" (or "MYRIAD" with OpenVINO 2022.3).
    pub openvino_device: Option<String>,
}

/// Pre-processing, chosen by `type`; it must match the kind of frames the model's sensors produce.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PreprocessConfig {
    /// RGB image → float tensor.
    Image(ImagePreprocess),
    /// Mono f32 window → `[1, window]` tensor.
    Audio {
        /// Linear gain applied to every sample.
        #[serde(default = "one")]
        gain: f32,
    },
    /// Numeric record → `[1, n]` tensor.
    Record {
        /// Zero-based field indices to keep, in this order; all fields when absent.
        #[serde(default)]
        fields: Option<Vec<usize>>,
    },
}

fn one() -> f32 {
    1.0
}

/// Image pre-processing steps, applied in this order: resize, centre crop, normalise, reorder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePreprocess {
    /// Bilinear resize to `[width, height]`.
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// Centre crop to `[width, height]`.
    #[serde(default)]
    pub crop: Option<[u32; 2]>,
    /// Per-channel mean subtracted after scaling pixels to [0, 1] (in RGB order).
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean (in RGB order).
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Channel order the model expects.
    #[serde(default)]
    pub channel_order: ChannelOrder,
    /// Tensor layout the model expects.
    #[serde(default)]
    pub layout: Layout,
}

fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}

/// Colour channel order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
}

/// Image tensor layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[1, C, H, W]`.
    #[default]
    Nchw,
    /// `[1, H, W, C]`.
    Nhwc,
}

/// Post-processing, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PostprocessConfig {
    /// Class scores → top-k labels.
    Classify {
        /// Output to read; the model's first output when absent.
        #[serde(default)]
        output: Option<String>,
        /// Applied to the scores first.
        #[serde(default = "softmax")]
        activation: Activation,
        /// How many classes to report.
        #[serde(default = "one_usize")]
        top_k: usize,
        /// Text file, one label per line, in class order; class indices are reported without it.
        #[serde(default)]
        labels: Option<PathBuf>,
        /// Classes scoring below this are not reported.
        #[serde(default)]
        threshold: f32,
    },
    /// Object detection: candidate boxes thresholded by score and de-duplicated by NMS.
    Detect(DetectConfig),
    /// The first values of each output, as they are.
    Raw {
        /// Outputs to report; all when absent.
        #[serde(default)]
        outputs: Option<Vec<String>>,
        /// How many values of each output to report.
        #[serde(default = "sixteen")]
        max_values: usize,
        /// Applied to every reported output.
        #[serde(default = "no_activation")]
        activation: Activation,
    },
}

fn softmax() -> Activation {
    Activation::Softmax
}
fn no_activation() -> Activation {
    Activation::None
}
fn one_usize() -> usize {
    1
}
fn sixteen() -> usize {
    16
}

/// Detection post-processing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// `"yolo"`: one output of candidate rows `[cx, cy, w, h, (objectness,) class scores...]`
    /// (YOLOv5 export; YOLOv8 has no objectness and is transposed). `"boxes"`: separate outputs
    /// for boxes `[N, 4]`, scores `[N]` or `[N, C]`, and optionally classes `[N]`.
    pub format: DetectFormat,
    /// yolo: the output to read (the first when absent).
    #[serde(default)]
    pub output: Option<String>,
    /// yolo: rows carry an objectness score that multiplies the class scores (YOLOv5: yes).
    #[serde(default = "yes")]
    pub objectness: bool,
    /// yolo: candidates are columns, `[4 + C, N]` (YOLOv8).
    #[serde(default)]
    pub transposed: bool,
    /// boxes: output holding the boxes.
    #[serde(default)]
    pub boxes: Option<String>,
    /// boxes: output holding the scores.
    #[serde(default)]
    pub scores: Option<String>,
    /// boxes: output holding class indices, when scores are one per box.
    #[serde(default)]
    pub classes: Option<String>,
    /// How a box is written: `"cxcywh"` (yolo's default), `"xyxy"` (boxes' default) or `"xywh"`.
    #[serde(default)]
    pub box_format: Option<BoxFormat>,
    /// Boxes are in pixels of the model input (divided by its size to report [0, 1]); false when
    /// the model already outputs [0, 1].
    #[serde(default = "yes")]
    pub pixel_coordinates: bool,
    /// Candidates scoring below are dropped.
    #[serde(default = "quarter")]
    pub score_threshold: f32,
    /// Overlap (intersection over union) above which the weaker of two same-class boxes is dropped.
    #[serde(default = "iou")]
    pub iou_threshold: f32,
    /// Most boxes reported per frame.
    #[serde(default = "hundred")]
    pub max_detections: usize,
    /// Text file, one label per line, in class order.
    #[serde(default)]
    pub labels: Option<PathBuf>,
}

/// Layout of a detector's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectFormat {
    /// One output of candidate rows (or columns).
    Yolo,
    /// Separate boxes / scores / classes outputs.
    Boxes,
}

/// How the four numbers of a box are meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxFormat {
    /// Centre x, centre y, width, height.
    Cxcywh,
    /// Left, top, right, bottom.
    Xyxy,
    /// Left, top, width, height.
    Xywh,
}

fn yes() -> bool {
    true
}
fn quarter() -> f32 {
    0.25
}
fn iou() -> f32 {
    0.45
}
fn hundred() -> usize {
    100
}

/// Score transform applied before reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Scores as the model gives them.
    None,
    /// exp(x) / Σ exp over the output's last axis.
    Softmax,
    /// 1 / (1 + exp(-x)) per value.
    Sigmoid,
}

impl PreprocessConfig {
    /// Kind of frame this pre-processing accepts.
    pub fn frame_kind(&self) -> FrameKind {
        match self {
            PreprocessConfig::Image(_) => FrameKind::Image,
            PreprocessConfig::Audio { .. } => FrameKind::Audio,
            PreprocessConfig::Record { .. } => FrameKind::Record,
        }
    }
}

impl ModelConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        check_file(&self.path, &format!("{path}.path"), errors);
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                errors.push(ConfigError::new(
                    format!("{path}.sha256"),
                    "must be 64 hexadecimal characters",
                ));
            }
        }
        for (name, dims) in &self.input_shapes {
            if dims.is_empty() || dims.contains(&0) {
                errors.push(ConfigError::new(
                    format!("{path}.input_shapes.{name}"),
                    "every dimension must be at least 1",
                ));
            }
        }
        if !BACKEND_NAMES.contains(&self.backend.as_str()) {
            errors.push(ConfigError::new(
                format!("{path}.backend"),
                format!(
                    "unknown backend \"{}\"; one of: {}",
                    self.backend,
                    BACKEND_NAMES.join(", ")
                ),
            ));
        }
        if self.auto_tune && self.backend != "auto" {
            errors.push(ConfigError::new(
                format!("{path}.auto_tune"),
                "needs backend = \"auto\" (a named backend is used as it is)",
            ));
        }
        if self.threads == Some(0) {
            errors.push(ConfigError::new(
                format!("{path}.threads"),
                "must be at least 1",
            ));
        }
        for name in self.recurrent_inputs.keys() {
            if self.constant_inputs.contains_key(name) {
                errors.push(ConfigError::new(
                    format!("{path}.recurrent_inputs.{name}"),
                    "is also a constant input",
                ));
            }
        }
        if let Some(frame) = &self.frame_input {
            if self.constant_inputs.contains_key(frame) || self.recurrent_inputs.contains_key(frame)
            {
                errors.push(ConfigError::new(
                    format!("{path}.frame_input"),
                    format!("\"{frame}\" is also a constant or recurrent input"),
                ));
            }
        }
        self.preprocess
            .validate(&format!("{path}.preprocess"), errors);
        self.postprocess
            .validate(&format!("{path}.postprocess"), errors);
    }
}

impl PreprocessConfig {
    fn validate(&self, pre: &str, errors: &mut Vec<ConfigError>) {
        match self {
            PreprocessConfig::Image(img) => img.validate(pre, errors),
            PreprocessConfig::Audio { gain } => {
                if !gain.is_finite() {
                    errors.push(ConfigError::new(format!("{pre}.gain"), "must be finite"));
                }
            }
            PreprocessConfig::Record { fields } => {
                if fields.as_ref().is_some_and(Vec::is_empty) {
                    errors.push(ConfigError::new(
                        format!("{pre}.fields"),
                        "must name at least one field",
                    ));
                }
            }
        }
    }
}

impl PostprocessConfig {
    fn validate(&self, post: &str, errors: &mut Vec<ConfigError>) {
        match self {
            PostprocessConfig::Classify {
                top_k,
                labels,
                threshold,
                ..
            } => {
                if *top_k == 0 {
                    errors.push(ConfigError::new(
                        format!("{post}.top_k"),
                        "must be at least 1",
                    ));
                }
                if let Some(labels) = labels {
                    check_file(labels, &format!("{post}.labels"), errors);
                }
                if !threshold.is_finite() {
                    errors.push(ConfigError::new(
                        format!("{post}.threshold"),
                        "must be finite",
                    ));
                }
            }
            PostprocessConfig::Detect(d) => {
                if d.format == DetectFormat::Boxes && (d.boxes.is_none() || d.scores.is_none()) {
                    errors.push(ConfigError::new(
                        post,
                        "format = \"boxes\" needs the names of its `boxes` and `scores` outputs",
                    ));
                }
                for (key, v) in [
                    ("score_threshold", d.score_threshold),
                    ("iou_threshold", d.iou_threshold),
                ] {
                    if !(0.0..=1.0).contains(&v) {
                        errors.push(ConfigError::new(format!("{post}.{key}"), "must be 0 to 1"));
                    }
                }
                if d.max_detections == 0 {
                    errors.push(ConfigError::new(
                        format!("{post}.max_detections"),
                        "must be at least 1",
                    ));
                }
                if let Some(labels) = &d.labels {
                    check_file(labels, &format!("{post}.labels"), errors);
                }
            }
            PostprocessConfig::Raw { max_values, .. } => {
                if *max_values == 0 {
                    errors.push(ConfigError::new(
                        format!("{post}.max_values"),
                        "must be at least 1",
                    ));
                }
            }
        }
    }
}

impl ImagePreprocess {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        for (key, size) in [("resize", self.resize), ("crop", self.crop)] {
            if let Some([w, h]) = size {
                if w == 0 || h == 0 || w > 8192 || h > 8192 {
                    errors.push(ConfigError::new(
                        format!("{path}.{key}"),
                        "width and height must be 1-8192",
                    ));
                }
            }
        }
        if let (Some([rw, rh]), Some([cw, ch])) = (self.resize, self.crop) {
            if cw > rw || ch > rh {
                errors.push(ConfigError::new(
                    format!("{path}.crop"),
                    format!("crop {cw}x{ch} is larger than the resized image {rw}x{rh}"),
                ));
            }
        }
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            errors.push(ConfigError::new(
                format!("{path}.std"),
                "every value must be finite and non-zero",
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            errors.push(ConfigError::new(
                format!("{path}.mean"),
                "every value must be finite",
            ));
        }
    }
}
