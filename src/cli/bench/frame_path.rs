//! The per-frame path of a configured model (`bench --config`): pre-processing of a synthetic
//! frame, inference and post-processing, against inference alone.

use super::{stats, synthetic, time_runs, BenchArgs, Measured};
use crate::config::{Config, PreprocessConfig};
use crate::frame::Payload;
use crate::model::{LoadedModel, RecurrentState};
use crate::pipeline::{Postprocessor, Preprocessor};
use anyhow::{anyhow, Context};
use std::time::{Duration, Instant};
use tract_onnx::prelude::{DatumType, Tensor};

/// The whole per-frame path of a configured model on one backend.
pub(super) fn measure_configured(
    args: &BenchArgs,
    name: &str,
    path: &std::path::Path,
) -> anyhow::Result<Measured> {
    let config = Config::load(path).map_err(|e| anyhow!("{}", e.lines().join("\n")))?;
    crate::backend::configure_onnxruntime(config.onnxruntime.library.clone());
    let mut mc = config
        .models
        .iter()
        .find(|m| m.id == args.model)
        .cloned()
        .ok_or_else(|| anyhow!("no model with id {:?} in {}", args.model, path.display()))?;
    mc.backend = name.to_string();
    if args.threads.is_some() {
        mc.threads = args.threads;
    }
    let started = Instant::now();
    let model = LoadedModel::load(&mc)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let pre = Preprocessor::new(&mc.id, &mc.preprocess, model.input())?;
    let post = Postprocessor::new(&mc.id, &mc.postprocess, model.outputs(), pre.image_size())?;
    let payload = frame_payload(args, &mc.preprocess, &pre)?;
    let tensor = pre.apply(&payload)?;
    let mut state = model.initial_state();
    let outputs = model.run(tensor.clone(), &mut state)?;
    let runs = alternate(args, &model, &pre, &post, &payload, &tensor, &mut state)?;
    let pre_times = time_runs(
        args.warmup,
        args.runs,
        || (),
        |()| {
            pre.apply(&payload)?;
            Ok(())
        },
    )?;
    let post_times = time_runs(
        args.warmup,
        args.runs,
        || (),
        |()| {
            post.apply(&outputs)?;
            Ok(())
        },
    )?;
    Ok(Measured {
        frame_median_us: Some(stats(runs.frame).0),
        pre_median_us: Some(stats(pre_times).0),
        post_median_us: Some(stats(post_times).0),
        gapped_median_us: Some(stats(runs.gapped).0),
        pre_in_frame_median_us: Some(stats(runs.pre_in_frame).0),
        post_in_frame_median_us: Some(stats(runs.post_in_frame).0),
        ..Measured::new(model.backend.to_string(), load_ms, runs.inference)
    })
}

/// A synthetic frame of the kind the model's pre-processing takes: noise of `--frame` size for
/// images, a quiet window for audio, constant fields for records.
fn frame_payload(
    args: &BenchArgs,
    preprocess: &PreprocessConfig,
    pre: &Preprocessor,
) -> anyhow::Result<Payload> {
    let mut seed = 7u64;
    Ok(match preprocess {
        PreprocessConfig::Image(_) => {
            let (w, h) = args
                .frame
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                .ok_or_else(|| anyhow!("--frame must be WIDTHxHEIGHT"))?;
            let noise = synthetic(DatumType::F32, &[(w * h * 3) as usize], None, &mut seed)?;
            let bytes: Vec<u8> = noise
                .to_plain_array_view::<f32>()?
                .iter()
                .map(|v| (v * 255.0) as u8)
                .collect();
            Payload::Image(image::RgbImage::from_raw(w, h, bytes).context("frame size")?)
        }
        PreprocessConfig::Audio { .. } => Payload::Audio {
            sample_rate: 16000,
            samples: vec![0.01; pre.input_len()],
        },
        PreprocessConfig::Record { fields } => {
            let n = fields
                .as_ref()
                .map_or(pre.input_len(), |f| f.iter().max().map_or(0, |m| m + 1));
            Payload::Record(vec![0.5; n])
        }
    })
}

/// Timings of the alternating runs, after warm-up.
struct Runs {
    inference: Vec<Duration>,
    frame: Vec<Duration>,
    gapped: Vec<Duration>,
    pre_in_frame: Vec<Duration>,
    post_in_frame: Vec<Duration>,
}

/// Inference alone, the whole frame and inference after an idle gap, alternating.
fn alternate(
    args: &BenchArgs,
    model: &LoadedModel,
    pre: &Preprocessor,
    post: &Postprocessor,
    payload: &Payload,
    tensor: &Tensor,
    state: &mut RecurrentState,
) -> anyhow::Result<Runs> {
    // Inference alone, the whole frame and inference after an idle gap alternate, so that drift
    // in the machine's speed (other load, frequency changes) hits them alike.
    let (mut infer_times, mut frame_times, mut gapped_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pre_in_frame, mut post_in_frame) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.runs.max(1) {
        // The copy of the input is made before the clock starts: the daemon hands its tensor
        // over and copies nothing.
        let input = tensor.clone();
        let t = Instant::now();
        model.run(input, state)?;
        let infer = t.elapsed();
        let t = Instant::now();
        let input = pre.apply(payload)?;
        let pre_done = t.elapsed();
        let out = model.run(input, state)?;
        let t_post = Instant::now();
        post.apply(&out)?;
        let frame = t.elapsed();
        // Spinning touches no memory: only the time without inference is alike.
        let post_done = t_post.elapsed();
        let gap = pre_done + post_done;
        let t = Instant::now();
        while t.elapsed() < gap {
            std::hint::spin_loop();
        }
        let input = tensor.clone();
        let t = Instant::now();
        model.run(input, state)?;
        let gapped = t.elapsed();
        if i >= args.warmup {
            infer_times.push(infer);
            frame_times.push(frame);
            gapped_times.push(gapped);
            pre_in_frame.push(pre_done);
            post_in_frame.push(post_done);
        }
    }
    Ok(Runs {
        inference: infer_times,
        frame: frame_times,
        gapped: gapped_times,
        pre_in_frame,
        post_in_frame,
    })
}
