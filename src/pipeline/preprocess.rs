//! Frame payload → input tensor, as declared in the model's `preprocess` table.

use super::PipelineError;
use crate::backend::TensorSpec;
use crate::config::{ChannelOrder, ImagePreprocess, Layout, PreprocessConfig};
use crate::frame::Payload;
use fast_image_resize::Resizer;
use image::imageops::{self, FilterType as ImageFilter};
use image::RgbImage;
use std::mem::MaybeUninit;
use std::sync::Mutex;
use tract_onnx::prelude::{tract_ndarray, DatumType, Tensor};

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

/// The resampler (with its intermediate buffer) and the resampled image, reused across frames.
#[derive(Debug, Default)]
struct Scratch {
    resizer: Resizer,
    resized: Vec<u8>,
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
                return Ok(image_tensor(
                    img,
                    config,
                    norm,
                    *width,
                    *height,
                    &self.shape,
                    scratch,
                ));
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
/// Resize-then-crop-then-fit is done as one resampling pass: the declared resize and centre crop
/// pick a rectangle of the source, which is resampled (antialiased bilinear, SIMD) straight to the
/// model's input size, into a buffer kept across frames. One more pass (SIMD where the CPU has
/// AVX2) normalises and lays out the pixels in the tensor's own buffer.
fn image_tensor(
    img: &RgbImage,
    cfg: &ImagePreprocess,
    norm: &Norm,
    width: u32,
    height: u32,
    shape: &[usize],
    scratch: &mut Scratch,
) -> Tensor {
    let window = crop_window(img, cfg);
    let source: &[u8] = if resample(img, window, width, height, scratch) {
        &scratch.resized
    } else {
        img.as_raw()
    };
    let plane = width as usize * height as usize;
    // The unsafe block below relies on this; `Preprocessor::new` made sure of it.
    assert_eq!(shape.iter().product::<usize>(), 3 * plane);
    // SAFETY: the tensor holds `3 * plane` f32 (its shape, asserted above); its storage is only
    // seen as `MaybeUninit` until `fill_*` has written every value (each writes all of `out`, or
    // panics before the tensor is returned).
    unsafe {
        // The shape is a plain f32 shape of a few dimensions: allocating it cannot fail short of
        // running out of memory.
        let mut tensor = Tensor::uninitialized::<f32>(shape).expect("f32 tensor");
        let out = std::slice::from_raw_parts_mut(
            tensor.as_ptr_mut_unchecked::<f32>() as *mut MaybeUninit<f32>,
            3 * plane,
        );
        match cfg.layout {
            Layout::Nchw => fill_nchw(out, source, norm),
            Layout::Nhwc => fill_nhwc(out, source, norm),
        }
        tensor
    }
}

/// Per-channel normalisation, in the model's channel order.
#[derive(Debug, Clone, Copy)]
struct Norm {
    /// Source channel (0 = R) of each of the model's channels.
    order: [usize; 3],
    scale: [f32; 3],
    bias: [f32; 3],
}

/// Writes every value of `out` (3 planes) from the interleaved `source`.
fn fill_nchw(out: &mut [MaybeUninit<f32>], source: &[u8], norm: &Norm) {
    let plane = out.len() / 3;
    assert!(source.len() == 3 * plane && out.len() == 3 * plane);
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; the slices have the lengths asserted above.
        done = unsafe { avx2::fill_nchw(source, [&mut *p0, &mut *p1, &mut *p2], norm) };
    }
    let (o, s, b) = (norm.order, norm.scale, norm.bias);
    let planes = p0[done..]
        .iter_mut()
        .zip(&mut p1[done..])
        .zip(&mut p2[done..]);
    for (((d0, d1), d2), px) in planes.zip(source[3 * done..].chunks_exact(3)) {
        d0.write(px[o[0]] as f32 * s[0] + b[0]);
        d1.write(px[o[1]] as f32 * s[1] + b[1]);
        d2.write(px[o[2]] as f32 * s[2] + b[2]);
    }
}

/// Writes every value of `out` (interleaved) from the interleaved `source`.
fn fill_nhwc(out: &mut [MaybeUninit<f32>], source: &[u8], norm: &Norm) {
    assert!(source.len() == out.len() && out.len() % 3 == 0);
    let (o, s, b) = (norm.order, norm.scale, norm.bias);
    for (d, px) in out.chunks_exact_mut(3).zip(source.chunks_exact(3)) {
        for k in 0..3 {
            d[k].write(px[o[k]] as f32 * s[k] + b[k]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Norm;
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// `pshufb` masks that gather channel `c` of 16 interleaved RGB pixels (48 bytes, three
    /// 16-byte loads) into one vector: one mask per load, 0x80 where another load supplies the
    /// byte.
    const fn masks(c: usize) -> [[u8; 16]; 3] {
        let mut m = [[0x80u8; 16]; 3];
        let mut j = 0;
        while j < 16 {
            let at = 3 * j + c;
            m[at / 16][j] = (at % 16) as u8;
            j += 1;
        }
        m
    }
    const MASKS: [[[u8; 16]; 3]; 3] = [masks(0), masks(1), masks(2)];

    /// Fills the planes for the largest multiple of 16 pixels with the same arithmetic as the
    /// scalar loop (exact u8 → f32, then a multiply and an add, each rounded once); returns how
    /// many pixels it did.
    ///
    /// # Safety
    /// AVX2 must be available; every plane must hold at least `source.len() / 3` values.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn fill_nchw(
        source: &[u8],
        planes: [&mut [MaybeUninit<f32>]; 3],
        norm: &Norm,
    ) -> usize {
        let n = source.len() / 48 * 16;
        assert!(planes.iter().all(|p| p.len() >= n));
        let [p0, p1, p2] = planes;
        let out = [p0.as_mut_ptr(), p1.as_mut_ptr(), p2.as_mut_ptr()];
        // SAFETY: unaligned 16-byte loads of 16-byte arrays.
        let load = |m: &[u8; 16]| unsafe { _mm_loadu_si128(m.as_ptr() as *const __m128i) };
        let masks: [[__m128i; 3]; 3] = norm.order.map(|c| MASKS[c].each_ref().map(load));
        let scale = norm.scale.map(|s| _mm256_set1_ps(s));
        let bias = norm.bias.map(|b| _mm256_set1_ps(b));
        let src = source.as_ptr();
        let mut i = 0;
        while i < n {
            // SAFETY: `i + 16 <= n`, so bytes `3 * i .. 3 * i + 48` lie in `source` and values
            // `i .. i + 16` in every plane.
            unsafe {
                let a = _mm_loadu_si128(src.add(3 * i) as *const __m128i);
                let b = _mm_loadu_si128(src.add(3 * i + 16) as *const __m128i);
                let c = _mm_loadu_si128(src.add(3 * i + 32) as *const __m128i);
                for k in 0..3 {
                    let [ma, mb, mc] = masks[k];
                    let v = _mm_or_si128(
                        _mm_or_si128(_mm_shuffle_epi8(a, ma), _mm_shuffle_epi8(b, mb)),
                        _mm_shuffle_epi8(c, mc),
                    );
                    let lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
                    let hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v)));
                    let lo = _mm256_add_ps(_mm256_mul_ps(lo, scale[k]), bias[k]);
                    let hi = _mm256_add_ps(_mm256_mul_ps(hi, scale[k]), bias[k]);
                    let dst = out[k].add(i) as *mut f32;
                    _mm256_storeu_ps(dst, lo);
                    _mm256_storeu_ps(dst.add(8), hi);
                }
            }
            i += 16;
        }
        n
    }
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

/// Resamples the `[left, top, width, height]` window of `img` to `width × height` into
/// `scratch.resized`; `false` (nothing done) when that is the image as it is.
fn resample(
    img: &RgbImage,
    window: [f64; 4],
    width: u32,
    height: u32,
    scratch: &mut Scratch,
) -> bool {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions};
    let whole = window == [0.0, 0.0, img.width() as f64, img.height() as f64];
    if whole && img.dimensions() == (width, height) {
        return false;
    }
    let Scratch { resizer, resized } = scratch;
    resized.resize(3 * width as usize * height as usize, 0);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(window[0], window[1], window[2], window[3]);
    // Sizes are non-zero (validated), the buffers are the images' sizes and the window lies
    // inside the image, so this cannot fail; should it, the frame is scaled whole rather than
    // lost.
    let done = images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
        .ok()
        .zip(images::Image::from_slice_u8(width, height, resized, PixelType::U8x3).ok())
        .is_some_and(|(src, mut dst)| resizer.resize(&src, &mut dst, &options).is_ok());
    if !done {
        *resized = imageops::resize(img, width, height, ImageFilter::Triangle).into_raw();
    }
    true
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

    /// Pre-processing as it was before it wrote straight into the tensor with buffers kept
    /// across frames: a fresh resampled image, then one table pass per channel.
    fn reference(img: &RgbImage, cfg: &ImagePreprocess, width: u32, height: u32) -> Vec<f32> {
        use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions};
        let [left, top, w, h] = crop_window(img, cfg);
        let source = if [left, top, w, h] == [0.0, 0.0, img.width() as f64, img.height() as f64]
            && img.dimensions() == (width, height)
        {
            img.as_raw().clone()
        } else {
            let src =
                images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
                    .unwrap();
            let mut dst = images::Image::new(width, height, PixelType::U8x3);
            let options = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .crop(left, top, w, h);
            Resizer::new().resize(&src, &mut dst, &options).unwrap();
            dst.into_vec()
        };
        let order = channel_order(cfg.channel_order);
        let lut: Vec<[f32; 256]> = (0..3)
            .map(|c| std::array::from_fn(|v| (v as f32 / 255.0 - cfg.mean[c]) / cfg.std[c]))
            .collect();
        let plane = width as usize * height as usize;
        let mut out = vec![0f32; 3 * plane];
        match cfg.layout {
            Layout::Nchw => {
                for (dst_c, &src_c) in order.iter().enumerate() {
                    let dst = &mut out[dst_c * plane..(dst_c + 1) * plane];
                    for (d, px) in dst.iter_mut().zip(source.chunks_exact(3)) {
                        *d = lut[src_c][px[src_c] as usize];
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

    #[test]
    fn tensor_is_the_same_as_a_table_pass_per_channel_over_a_fresh_image() {
        let noise = |w, h| {
            let mut seed = 1u32;
            RgbImage::from_fn(w, h, |_, _| {
                image::Rgb(std::array::from_fn(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 24) as u8
                }))
            })
        };
        let cases = [
            (Some([256, 256]), Some([224, 224]), 224, 224, 640, 480),
            (Some([320, 320]), None, 320, 320, 640, 480),
            (None, None, 64, 48, 64, 48),
            (None, None, 33, 17, 640, 480),
        ];
        for (resize, crop, w, h, sw, sh) in cases {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                    let mut c = image_cfg(layout, order);
                    c.mean = [0.485, 0.456, 0.406];
                    c.std = [0.229, 0.224, 0.225];
                    c.resize = resize;
                    c.crop = crop;
                    let shape = match layout {
                        Layout::Nchw => [1, 3, h, w],
                        Layout::Nhwc => [1, h, w, 3],
                    };
                    let img = noise(sw, sh);
                    let p =
                        Preprocessor::new("m", &PreprocessConfig::Image(c.clone()), &spec(&shape))
                            .unwrap();
                    let expected = reference(&img, &c, w as u32, h as u32);
                    // Twice: the second frame reuses the first one's buffers.
                    for _ in 0..2 {
                        let t = p.apply(&Payload::Image(img.clone())).unwrap();
                        assert_eq!(t.shape(), &shape);
                        let diff = vals(&t)
                            .iter()
                            .zip(&expected)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0f32, f32::max);
                        // A multiply and an add instead of a divide, a subtract and a divide:
                        // a few units in the last place of values within ±3.
                        assert!(
                            diff <= 2e-6,
                            "{resize:?} {crop:?} {layout:?} {order:?}: {diff}"
                        );
                    }
                }
            }
        }
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
