//! Frame payload → input tensor, as declared in the model's `preprocess` table.

use super::PipelineError;
use crate::backend::TensorSpec;
use crate::config::{ChannelOrder, ImagePreprocess, Layout, PreprocessConfig};
use crate::frame::Payload;
use image::RgbImage;
use resample::Resampler;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use tract_onnx::prelude::{tract_ndarray, DatumType, Tensor};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod blocks;
#[cfg(target_arch = "aarch64")]
mod neon;
mod resample;
mod weights;

/// Turns payloads into the model's input tensor.
#[derive(Debug)]
pub struct Preprocessor {
    step: Step,
    shape: Vec<usize>,
    /// Buffers kept from frame to frame, so that the hot path allocates only the input tensor.
    scratch: Mutex<Scratch>,
}

impl Clone for Preprocessor {
    fn clone(&self) -> Self {
        Self {
            step: self.step.clone(),
            shape: self.shape.clone(),
            scratch: Mutex::default(),
        }
    }
}

/// The resampler's weight tables and row buffers, reused across frames.
#[derive(Debug, Default)]
struct Scratch {
    resampler: Resampler,
}

#[derive(Debug, Clone)]
enum Step {
    Image {
        config: ImagePreprocess,
        width: u32,
        height: u32,
        /// Normalisation of each of the model's channels: `value * scale + bias`.
        norm: Norm,
    },
    Audio {
        gain: f32,
    },
    Record {
        fields: Option<Vec<usize>>,
    },
}

impl Preprocessor {
    /// Checks `config` against the model's input and prepares the steps.
    pub fn new(
        model: &str,
        config: &PreprocessConfig,
        input: &TensorSpec,
    ) -> Result<Self, PipelineError> {
        let setup = |message: String| PipelineError::Setup {
            model: model.to_string(),
            message,
        };
        if input.datum_type != DatumType::F32 {
            return Err(setup(format!(
                "input \"{}\" is {:?}; pre-processing produces f32",
                input.name, input.datum_type
            )));
        }
        let shape = input.shape.clone();
        let step = match config {
            PreprocessConfig::Image(img) => {
                let (c, h, w) = match (img.layout, shape.as_slice()) {
                    (Layout::Nchw, [1, c, h, w]) => (*c, *h, *w),
                    (Layout::Nhwc, [1, h, w, c]) => (*c, *h, *w),
                    _ => {
                        return Err(setup(format!(
                            "input \"{}\" has shape {shape:?}; image pre-processing with layout {:?} needs [1, {}]",
                            input.name,
                            img.layout,
                            if img.layout == Layout::Nchw { "3, H, W" } else { "H, W, 3" }
                        )))
                    }
                };
                if c != 3 {
                    return Err(setup(format!(
                        "input \"{}\" has {c} channels; image pre-processing produces 3 (RGB/BGR)",
                        input.name
                    )));
                }
                let order = channel_order(img.channel_order);
                // (v / 255 - mean) / std as one multiply and one add.
                let norm = Norm {
                    order,
                    scale: order.map(|c| 1.0 / (255.0 * img.std[c])),
                    bias: order.map(|c| -img.mean[c] / img.std[c]),
                };
                Step::Image {
                    config: img.clone(),
                    width: w as u32,
                    height: h as u32,
                    norm,
                }
            }
            PreprocessConfig::Audio { gain } => Step::Audio { gain: *gain },
            PreprocessConfig::Record { fields } => {
                if let Some(fields) = fields {
                    let n: usize = shape.iter().product();
                    if fields.len() != n {
                        return Err(setup(format!(
                            "preprocess.fields selects {} fields but input \"{}\" {shape:?} takes {n} values",
                            fields.len(),
                            input.name
                        )));
                    }
                }
                Step::Record {
                    fields: fields.clone(),
                }
            }
        };
        Ok(Self {
            step,
            shape,
            scratch: Mutex::default(),
        })
    }

    /// (width, height) of the model's input for image models.
    pub fn image_size(&self) -> Option<(u32, u32)> {
        match &self.step {
            Step::Image { width, height, .. } => Some((*width, *height)),
            _ => None,
        }
    }

    /// Number of values the model's input takes.
    pub fn input_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Builds the input tensor for one payload.
    pub fn apply(&self, payload: &Payload) -> Result<Tensor, PipelineError> {
        let data = match (&self.step, payload) {
            (
                Step::Image {
                    config,
                    width,
                    height,
                    norm,
                },
                Payload::Image(img),
            ) => {
                // A worker owns its pre-processor, so the lock is never contended; should it be,
                // this frame gets buffers of its own rather than waiting.
                let mut own = None;
                let mut guard = self.scratch.try_lock().ok();
                let scratch = match guard.as_deref_mut() {
                    Some(s) => s,
                    None => own.insert(Scratch::default()),
                };
                return image_tensor(img, config, norm, *width, *height, &self.shape, scratch);
            }
            (Step::Audio { gain }, Payload::Audio { samples, .. }) => {
                if samples.len() != self.input_len() {
                    return Err(PipelineError::Frame(format!(
                        "audio window has {} samples, the model takes {}",
                        samples.len(),
                        self.input_len()
                    )));
                }
                samples.iter().map(|s| s * gain).collect()
            }
            (Step::Record { fields }, Payload::Record(values)) => {
                let picked: Vec<f32> = match fields {
                    Some(fields) => fields
                        .iter()
                        .map(|&i| {
                            values.get(i).map(|v| *v as f32).ok_or_else(|| {
                                PipelineError::Frame(format!(
                                    "record has {} fields, field {i} was selected",
                                    values.len()
                                ))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    None => values.iter().map(|v| *v as f32).collect(),
                };
                if picked.len() != self.input_len() {
                    return Err(PipelineError::Frame(format!(
                        "record gives {} values, the model takes {}",
                        picked.len(),
                        self.input_len()
                    )));
                }
                picked
            }
            (_, other) => {
                return Err(PipelineError::Frame(format!(
                    "got a {} frame, this model pre-processes another kind",
                    other.kind()
                )))
            }
        };
        // Copied into an aligned tensor (tract does not adopt the buffer); these inputs are small.
        tract_ndarray::ArrayD::from_shape_vec(self.shape.as_slice(), data)
            .map(Tensor::from)
            .map_err(|e| PipelineError::Frame(e.to_string()))
    }
}

/// Source channel feeding each of the model's channels.
fn channel_order(order: ChannelOrder) -> [usize; 3] {
    match order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    }
}

/// Resize, centre crop, fit to the model, normalise and lay out an image, straight into the
/// input tensor.
///
/// Resize-then-crop-then-fit is done as one resampling: the declared resize and centre crop pick
/// a rectangle of the source, which is resampled (antialiased bilinear) straight to the model's
/// input size, one output row at a time, and normalised into the tensor's own buffer (see
/// [`resample`]).
fn image_tensor(
    img: &RgbImage,
    cfg: &ImagePreprocess,
    norm: &Norm,
    width: u32,
    height: u32,
    shape: &[usize],
    scratch: &mut Scratch,
) -> Result<Tensor, PipelineError> {
    if img.width() == 0 || img.height() == 0 {
        return Err(PipelineError::Frame(format!(
            "image is {}x{}: nothing to resample",
            img.width(),
            img.height()
        )));
    }
    let window = crop_window(img, cfg);
    let plane = width as usize * height as usize;
    // The unsafe block below relies on this; `Preprocessor::new` made sure of it.
    assert_eq!(shape.iter().product::<usize>(), 3 * plane);
    // SAFETY: the tensor holds `3 * plane` f32 (its shape, asserted above); its storage is only
    // seen as `MaybeUninit` until the resampler has written every value (it writes all of `out`,
    // or panics before the tensor is returned).
    unsafe {
        // The shape is a plain f32 shape of a few dimensions: allocating it cannot fail short of
        // running out of memory.
        let mut tensor = Tensor::uninitialized::<f32>(shape).expect("f32 tensor");
        let out = std::slice::from_raw_parts_mut(
            tensor.as_ptr_mut_unchecked::<f32>() as *mut MaybeUninit<f32>,
            3 * plane,
        );
        scratch
            .resampler
            .run(img, window, (width, height), norm, cfg.layout, out);
        Ok(tensor)
    }
}

/// Per-channel normalisation, in the model's channel order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Norm {
    /// Source channel (0 = R) of each of the model's channels.
    order: [usize; 3],
    /// `value * scale + bias` turns a value in 0..=255 into the model's input, per model channel.
    scale: [f32; 3],
    bias: [f32; 3],
}

/// The `[left, top, width, height]` window of `img` that the declared resize and centre crop keep.
fn crop_window(img: &RgbImage, cfg: &ImagePreprocess) -> [f64; 4] {
    let (sw, sh) = (img.width() as f64, img.height() as f64);
    // The declared resize scales the source; the crop then keeps a centred window of the result.
    let (rw, rh) = cfg.resize.map_or((sw, sh), |[w, h]| (w as f64, h as f64));
    let (cw, ch) = cfg
        .crop
        .map_or((rw, rh), |[w, h]| ((w as f64).min(rw), (h as f64).min(rh)));
    let (crop_w, crop_h) = (cw * sw / rw, ch * sh / rh);
    let (left, top) = ((sw - crop_w) / 2.0, (sh - crop_h) / 2.0);
    [left, top, crop_w, crop_h]
}

#[cfg(test)]
mod tests;
