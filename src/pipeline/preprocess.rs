//! Frame payload → input tensor, as declared in the model's `preprocess` table.

use super::PipelineError;
use crate::backend::TensorSpec;
use crate::config::{ChannelOrder, ImagePreprocess, Layout, PreprocessConfig};
use crate::frame::Payload;
use image::imageops::{self, FilterType as ImageFilter};
use image::RgbImage;
use tract_onnx::prelude::{tract_ndarray, DatumType, Tensor};

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
        // Moves the buffer into the tensor (no copy of a possibly large input).
        tract_ndarray::ArrayD::from_shape_vec(self.shape.as_slice(), data)
            .map(Tensor::from)
            .map_err(|e| PipelineError::Frame(e.to_string()))
    }
}

/// Resize, centre crop, fit to the model, normalise and lay out an image.
///
/// Resize-then-crop-then-fit is done as one resampling pass: the declared resize and centre crop
/// pick a rectangle of the source, which is resampled (antialiased bilinear, SIMD) straight to the
/// model's input size. Normalisation is a 256-entry table per channel.
fn image_tensor_data(img: &RgbImage, cfg: &ImagePreprocess, width: u32, height: u32) -> Vec<f32> {
    let (sw, sh) = (img.width() as f64, img.height() as f64);
    // The declared resize scales the source; the crop then keeps a centred window of the result.
    let (rw, rh) = cfg.resize.map_or((sw, sh), |[w, h]| (w as f64, h as f64));
    let (cw, ch) = cfg
        .crop
        .map_or((rw, rh), |[w, h]| ((w as f64).min(rw), (h as f64).min(rh)));
    let (crop_w, crop_h) = (cw * sw / rw, ch * sh / rh);
    let (left, top) = ((sw - crop_w) / 2.0, (sh - crop_h) / 2.0);
    let resized = resample(img, [left, top, crop_w, crop_h], width, height);
    let source: &[u8] = resized.as_deref().unwrap_or(img.as_raw());

    let order: [usize; 3] = match cfg.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let lut: Vec<[f32; 256]> = (0..3)
        .map(|c| std::array::from_fn(|v| (v as f32 / 255.0 - cfg.mean[c]) / cfg.std[c]))
        .collect();
    let plane = width as usize * height as usize;
    let mut out = vec![0f32; 3 * plane];
    match cfg.layout {
        Layout::Nchw => {
            for (dst_c, &src_c) in order.iter().enumerate() {
                let table = &lut[src_c];
                let dst = &mut out[dst_c * plane..(dst_c + 1) * plane];
                for (d, px) in dst.iter_mut().zip(source.chunks_exact(3)) {
                    *d = table[px[src_c] as usize];
                }
            }
        }
        Layout::Nhwc => {
            for (d, px) in out.chunks_exact_mut(3).zip(source.chunks_exact(3)) {
                for (dst_c, &src_c) in order.iter().enumerate() {
                    d[dst_c] = lut[src_c][px[src_c] as usize];
                }
            }
        }
    }
    out
}

/// The `[left, top, width, height]` window of `img` resampled to `width × height`; `None` when
/// that is the image as it is.
fn resample(img: &RgbImage, window: [f64; 4], width: u32, height: u32) -> Option<Vec<u8>> {
    use fast_image_resize::{
        images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
    };
    let whole = window == [0.0, 0.0, img.width() as f64, img.height() as f64];
    if whole && img.dimensions() == (width, height) {
        return None;
    }
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3).ok()?;
    let mut dst = fast_image_resize::images::Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(window[0], window[1], window[2], window[3]);
    // Sizes are non-zero (validated) and the window lies inside the image, so this cannot fail;
    // should it, the frame is scaled whole rather than lost.
    match Resizer::new().resize(&src, &mut dst, &options) {
        Ok(()) => Some(dst.into_vec()),
        Err(_) => Some(imageops::resize(img, width, height, ImageFilter::Triangle).into_raw()),
    }
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
    fn one_pass_resampling_matches_resize_then_crop_step_by_step() {
        // A smooth gradient, so that filter differences stay small and geometry errors show.
        let img = RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([
                (x * 255 / 639) as u8,
                (y * 255 / 479) as u8,
                ((x + y) % 256) as u8 / 2,
            ])
        });
        let mut c = image_cfg(Layout::Nchw, ChannelOrder::Rgb);
        c.mean = [0.0; 3];
        c.std = [1.0; 3];
        c.resize = Some([256, 256]);
        c.crop = Some([224, 224]);
        let p =
            Preprocessor::new("m", &PreprocessConfig::Image(c), &spec(&[1, 3, 224, 224])).unwrap();
        let ours = vals(&p.apply(&Payload::Image(img.clone())).unwrap());
        let resized = imageops::resize(&img, 256, 256, ImageFilter::Triangle);
        let cropped = imageops::crop_imm(&resized, 16, 16, 224, 224).to_image();
        let mut diff = 0f32;
        for (x, y, px) in cropped.enumerate_pixels() {
            for ch in 0..2 {
                let at = ch * 224 * 224 + y as usize * 224 + x as usize;
                diff = diff.max((ours[at] - px.0[ch] as f32 / 255.0).abs());
            }
        }
        assert!(diff < 3.0 / 255.0, "max difference {diff}");
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
