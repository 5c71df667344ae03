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
    // Up to rounding (the SIMD kernels fold the scale into the filter's weights).
    let close = |t: &Tensor, expected: [f32; 6]| {
        let got = vals(t);
        assert!(
            got.iter().zip(expected).all(|(g, e)| (g - e).abs() < 1e-6),
            "{got:?}"
        );
    };
    // R: (1 - 0.5)/0.5 = 1 for both pixels; G: 0; B: 1 then 0.
    close(&t, [1., 1., 0., 0., 1., 0.]);

    let cfg = PreprocessConfig::Image(image_cfg(Layout::Nhwc, ChannelOrder::Bgr));
    let p = Preprocessor::new("m", &cfg, &spec(&[1, 1, 2, 3])).unwrap();
    let t = p.apply(&Payload::Image(img)).unwrap();
    close(&t, [1., 0., 1., 0., 0., 1.]);
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
    use image::imageops::{self, FilterType as ImageFilter};
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
    let p = Preprocessor::new("m", &PreprocessConfig::Image(c), &spec(&[1, 3, 224, 224])).unwrap();
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

/// Deterministic noise: the hardest input for agreement between resamplers (every rounding
/// difference shows).
pub(super) fn noise(w: u32, h: u32, mut seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |_, _| {
        image::Rgb(std::array::from_fn(|_| {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 24) as u8
        }))
    })
}

/// Pre-processing with `fast_image_resize`, as it was done before: antialiased bilinear
/// from the crop window to the model size, rounded to 8 bits, then `(v / 255 - mean) / std`
/// per channel.
pub(super) fn reference(
    img: &RgbImage,
    cfg: &ImagePreprocess,
    width: u32,
    height: u32,
) -> Vec<f32> {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let [left, top, w, h] = crop_window(img, cfg);
    let src =
        images::ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3).unwrap();
    let mut dst = images::Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(left, top, w, h);
    Resizer::new().resize(&src, &mut dst, &options).unwrap();
    let source = dst.into_vec();
    let order = channel_order(cfg.channel_order);
    let norm = |c: usize, v: u8| (v as f32 / 255.0 - cfg.mean[c]) / cfg.std[c];
    let plane = width as usize * height as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in source.chunks_exact(3).enumerate() {
        for (k, &c) in order.iter().enumerate() {
            match cfg.layout {
                Layout::Nchw => out[k * plane + i] = norm(c, px[c]),
                Layout::Nhwc => out[3 * i + k] = norm(c, px[c]),
            }
        }
    }
    out
}

/// Largest difference between `ours` and `expected`, in 8-bit steps of the source (a
/// difference of 1 is `1 / (255 · std)` in the model's units).
pub(super) fn steps_apart(ours: &[f32], expected: &[f32], cfg: &ImagePreprocess) -> f32 {
    let order = channel_order(cfg.channel_order);
    let plane = ours.len() / 3;
    let channel = |i: usize| match cfg.layout {
        Layout::Nchw => i / plane,
        Layout::Nhwc => i % 3,
    };
    ours.iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (a, b))| (a - b).abs() * 255.0 * cfg.std[order[channel(i)]])
        .fold(0.0, f32::max)
}

/// `(resize, crop, model width, model height, source width, source height)`: the bench's
/// geometries, the identity, odd sizes, heavy downscaling, upscaling, mixed, windows with
/// fractional edges and a one-pixel source.
#[allow(clippy::type_complexity)]
pub(super) const CASES: [(Option<[u32; 2]>, Option<[u32; 2]>, usize, usize, u32, u32); 10] = [
    (Some([256, 256]), Some([224, 224]), 224, 224, 640, 480),
    (Some([320, 320]), None, 320, 320, 640, 480),
    (None, None, 64, 48, 64, 48),
    (None, None, 33, 17, 640, 480),
    (None, None, 97, 61, 31, 23),
    (Some([50, 40]), Some([33, 21]), 19, 13, 101, 77),
    (None, None, 300, 5, 7, 200),
    (Some([1000, 700]), Some([640, 480]), 224, 224, 640, 480),
    (Some([256, 256]), Some([224, 224]), 37, 29, 641, 479),
    (None, None, 5, 3, 1, 1),
];

pub(super) fn case_cfg(
    resize: Option<[u32; 2]>,
    crop: Option<[u32; 2]>,
    layout: Layout,
    order: ChannelOrder,
) -> ImagePreprocess {
    let mut c = image_cfg(layout, order);
    c.mean = [0.485, 0.456, 0.406];
    c.std = [0.229, 0.224, 0.225];
    c.resize = resize;
    c.crop = crop;
    c
}

#[test]
fn tensor_is_within_one_step_of_the_fast_image_resize_pipeline() {
    let mut worst = 0f32;
    for (n, (resize, crop, w, h, sw, sh)) in CASES.into_iter().enumerate() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
                let c = case_cfg(resize, crop, layout, order);
                let shape = match layout {
                    Layout::Nchw => [1, 3, h, w],
                    Layout::Nhwc => [1, h, w, 3],
                };
                let img = noise(sw, sh, n as u32);
                let p = Preprocessor::new("m", &PreprocessConfig::Image(c.clone()), &spec(&shape))
                    .unwrap();
                let expected = reference(&img, &c, w as u32, h as u32);
                // Twice: the second frame reuses the first one's tables and buffers.
                for _ in 0..2 {
                    let t = p.apply(&Payload::Image(img.clone())).unwrap();
                    assert_eq!(t.shape(), &shape);
                    let steps = steps_apart(&vals(&t), &expected, &c);
                    // The reference rounds to 8 bits twice (after each pass, half a step
                    // each); this resampler does not round.
                    assert!(
                        steps <= STEP_BOUND,
                        "{resize:?} {crop:?} {w}x{h} from {sw}x{sh} {layout:?} {order:?}: {steps}"
                    );
                    worst = worst.max(steps);
                }
                if (sw, sh) == (w as u32, h as u32) && resize.is_none() && crop.is_none() {
                    // Nothing to resample: the values are the source's, normalised (a
                    // multiply and an add against a subtract and two divides: a few units
                    // in the last place of values within ±3).
                    let t = p.apply(&Payload::Image(img.clone())).unwrap();
                    let diff = vals(&t)
                        .iter()
                        .zip(&expected)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(diff <= 2e-6, "{diff}");
                }
            }
        }
    }
    eprintln!("largest difference from fast_image_resize: {worst} steps of 1/255");
}

/// Bound on the difference from the `fast_image_resize` pipeline, in 8-bit steps: half a
/// step for each of its two roundings, plus its 14-bit fixed-point weights and f32 rounding
/// on both sides (the largest seen on these cases is 1.00001).
pub(super) const STEP_BOUND: f32 = 1.02;

#[test]
fn an_empty_image_is_a_frame_error() {
    let cfg = PreprocessConfig::Image(image_cfg(Layout::Nchw, ChannelOrder::Rgb));
    let p = Preprocessor::new("m", &cfg, &spec(&[1, 3, 2, 2])).unwrap();
    let err = p.apply(&Payload::Image(RgbImage::new(0, 4))).unwrap_err();
    assert!(err.to_string().contains("0x4"), "{err}");
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

    let p = Preprocessor::new("m", &PreprocessConfig::Audio { gain: 2.0 }, &spec(&[1, 2])).unwrap();
    let t = p
        .apply(&Payload::Audio {
            sample_rate: 16000,
            samples: vec![0.25, -0.5],
        })
        .unwrap();
    assert_eq!(vals(&t), &[0.5, -1.0]);
}
