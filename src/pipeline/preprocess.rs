//! Frame payload → input tensor, as declared in the model's `preprocess` table.

use super::PipelineError;
use crate::backend::TensorSpec;
use crate::config::{ChannelOrder, ImagePreprocess, Layout, PreprocessConfig};
use crate::frame::Payload;
use image::imageops::{self, FilterType};
use image::RgbImage;
use tract_onnx::prelude::{DatumType, Tensor};

/// Turns payloads into the model's input tensor.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    step: Step,
    shape: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Step {
    Image {
        config: ImagePreprocess,
        width: u32,
        height: u32,
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
                Step::Image {
                    config: img.clone(),
                    width: w as u32,
                    height: h as u32,
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
        Ok(Self { step, shape })
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
                },
                Payload::Image(img),
            ) => image_tensor_data(img, config, *width, *height),
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
        Tensor::from_shape(&self.shape, &data).map_err(|e| PipelineError::Frame(e.to_string()))
    }
}

/// Resize, centre crop, fit to the model, normalise and lay out an image.
fn image_tensor_data(img: &RgbImage, cfg: &ImagePreprocess, width: u32, height: u32) -> Vec<f32> {
    let mut current = std::borrow::Cow::Borrowed(img);
    if let Some([w, h]) = cfg.resize {
        if current.dimensions() != (w, h) {
            current =
                std::borrow::Cow::Owned(imageops::resize(&*current, w, h, FilterType::Triangle));
        }
    }
    if let Some([w, h]) = cfg.crop {
        let (cw, ch) = current.dimensions();
        let (w, h) = (w.min(cw), h.min(ch));
        let (x, y) = ((cw - w) / 2, (ch - h) / 2);
        current = std::borrow::Cow::Owned(imageops::crop_imm(&*current, x, y, w, h).to_image());
    }
    // Whatever the declared steps left, the model gets exactly its input size.
    if current.dimensions() != (width, height) {
        current = std::borrow::Cow::Owned(imageops::resize(
            &*current,
            width,
            height,
            FilterType::Triangle,
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let order: [usize; 3] = match cfg.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let mut out = vec![0f32; 3 * w * h];
    for (x, y, px) in current.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        for (dst_c, &src_c) in order.iter().enumerate() {
            let v = (px.0[src_c] as f32 / 255.0 - cfg.mean[src_c]) / cfg.std[src_c];
            let at = match cfg.layout {
                Layout::Nchw => dst_c * w * h + y * w + x,
                Layout::Nhwc => (y * w + x) * 3 + dst_c,
            };
            out[at] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(t: &Tensor) -> Vec<f32> {
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn spec(shape: &[usize]) -> TensorSpec {
        TensorSpec {
            name: "x".into(),
            datum_type: DatumType::F32,
            shape: shape.to_vec(),
        }
    }

    fn image_cfg(layout: Layout, order: ChannelOrder) -> ImagePreprocess {
        ImagePreprocess {
            resize: None,
            crop: None,
            mean: [0.5, 0.0, 0.0],
            std: [0.5, 1.0, 1.0],
            channel_order: order,
            layout,
        }
    }

    #[test]
    fn image_is_normalised_and_laid_out_nchw_and_nhwc_with_bgr() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            image::Rgb([255, 0, if x == 0 { 255 } else { 0 }])
        });
        let cfg = PreprocessConfig::Image(image_cfg(Layout::Nchw, ChannelOrder::Rgb));
        let p = Preprocessor::new("m", &cfg, &spec(&[1, 3, 1, 2])).unwrap();
        let t = p.apply(&Payload::Image(img.clone())).unwrap();
        // R: (1 - 0.5)/0.5 = 1 for both pixels; G: 0; B: 1 then 0.
        assert_eq!(vals(&t), &[1., 1., 0., 0., 1., 0.]);

        let cfg = PreprocessConfig::Image(image_cfg(Layout::Nhwc, ChannelOrder::Bgr));
        let p = Preprocessor::new("m", &cfg, &spec(&[1, 1, 2, 3])).unwrap();
        let t = p.apply(&Payload::Image(img)).unwrap();
        assert_eq!(vals(&t), &[1., 0., 1., 0., 0., 1.]);
    }

    #[test]
    fn resize_then_centre_crop_then_fit_to_the_model() {
        // Left half black, right half white; a centre crop of the middle keeps both halves.
        let img = RgbImage::from_fn(8, 4, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let mut c = image_cfg(Layout::Nchw, ChannelOrder::Rgb);
        c.mean = [0.0; 3];
        c.std = [1.0; 3];
        c.resize = Some([4, 2]);
        c.crop = Some([2, 2]);
        let p = Preprocessor::new("m", &PreprocessConfig::Image(c), &spec(&[1, 3, 2, 2])).unwrap();
        let t = p.apply(&Payload::Image(img)).unwrap();
        let v = vals(&t);
        assert!(v[0] < 0.5 && v[1] > 0.5, "{v:?}");
    }

    #[test]
    fn mismatched_model_input_is_a_setup_error() {
        let cfg = PreprocessConfig::Image(image_cfg(Layout::Nchw, ChannelOrder::Rgb));
        let err = Preprocessor::new("m", &cfg, &spec(&[1, 1, 8, 8])).unwrap_err();
        assert!(err.to_string().contains("1 channels"), "{err}");
        let cfg = PreprocessConfig::Record {
            fields: Some(vec![0, 1]),
        };
        let err = Preprocessor::new("m", &cfg, &spec(&[1, 3])).unwrap_err();
        assert!(err.to_string().contains("selects 2 fields"), "{err}");
    }

    #[test]
    fn record_fields_are_selected_and_audio_gain_applied() {
        let cfg = PreprocessConfig::Record {
            fields: Some(vec![2, 0]),
        };
        let p = Preprocessor::new("m", &cfg, &spec(&[1, 2])).unwrap();
        let t = p.apply(&Payload::Record(vec![1.0, 2.0, 3.0])).unwrap();
        assert_eq!(vals(&t), &[3.0, 1.0]);
        assert!(p.apply(&Payload::Record(vec![1.0])).is_err());

        let p =
            Preprocessor::new("m", &PreprocessConfig::Audio { gain: 2.0 }, &spec(&[1, 2])).unwrap();
        let t = p
            .apply(&Payload::Audio {
                sample_rate: 16000,
                samples: vec![0.25, -0.5],
            })
            .unwrap();
        assert_eq!(vals(&t), &[0.5, -1.0]);
    }
}
