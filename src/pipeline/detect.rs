//! Detection post-processing: candidate boxes → score threshold → per-class NMS → boxes in [0, 1].

use super::output_values::{values_f32, with_values_f32};
use super::PipelineError;
use crate::config::{BoxFormat, DetectConfig, DetectFormat};
use crate::prediction::DetectedBox;
use tract_onnx::prelude::Tensor;

/// A candidate in corner form, in the model's coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class: usize,
    /// Score.
    pub score: f32,
    /// Left, top, right, bottom.
    pub corners: [f32; 4],
}

/// Ready-to-run detection post-processing.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectConfig,
    /// Output indices: yolo → [output]; boxes → [boxes, scores, classes?].
    outputs: Vec<usize>,
    labels: Vec<String>,
    /// Model input (width, height), to scale pixel coordinates to [0, 1].
    input_size: (f32, f32),
}

fn corners(b: [f32; 4], format: BoxFormat) -> [f32; 4] {
    match format {
        BoxFormat::Cxcywh => [
            b[0] - b[2] / 2.0,
            b[1] - b[3] / 2.0,
            b[0] + b[2] / 2.0,
            b[1] + b[3] / 2.0,
        ],
        BoxFormat::Xyxy => b,
        BoxFormat::Xywh => [b[0], b[1], b[0] + b[2], b[1] + b[3]],
    }
}

/// YOLO candidates from a `[N, 4 + (1) + C]` row matrix (or its transpose), above `threshold`.
pub fn decode_yolo(
    data: &[f32],
    shape: &[usize],
    objectness: bool,
    transposed: bool,
    format: BoxFormat,
    threshold: f32,
) -> Result<Vec<Candidate>, String> {
    // Leading axes of size 1 (the batch) are dropped.
    let dims: Vec<usize> = shape.iter().copied().skip_while(|d| *d == 1).collect();
    let (n, width) = match (dims.as_slice(), transposed) {
        ([n, w], false) => (*n, *w),
        ([w, n], true) => (*n, *w),
        _ => {
            return Err(format!(
                "expected a [N, features] output, got shape {shape:?}"
            ))
        }
    };
    let first_class = if objectness { 5 } else { 4 };
    if width <= first_class {
        return Err(format!("rows of {width} values leave no class scores"));
    }
    if data.len() != n * width {
        return Err(format!(
            "output holds {} values, shape {shape:?} needs {}",
            data.len(),
            n * width
        ));
    }
    // Best class and its score per row, read in memory order for either layout.
    let mut best: Vec<(usize, f32)> = vec![(0, f32::NEG_INFINITY); n];
    if transposed {
        for (class, scores) in data[first_class * n..].chunks_exact(n).enumerate() {
            for (b, &s) in best.iter_mut().zip(scores) {
                if s > b.1 {
                    *b = (class, s);
                }
            }
        }
    } else {
        for (b, row) in best.iter_mut().zip(data.chunks_exact(width)) {
            for (class, &s) in row[first_class..].iter().enumerate() {
                if s > b.1 {
                    *b = (class, s);
                }
            }
        }
    }
    let at = |row: usize, col: usize| {
        if transposed {
            data[col * n + row]
        } else {
            data[row * width + col]
        }
    };
    let mut out = Vec::new();
    for (row, &(class, best)) in best.iter().enumerate() {
        let obj = if objectness { at(row, 4) } else { 1.0 };
        if obj < threshold {
            continue;
        }
        let score = obj * best;
        if score >= threshold {
            let b = [at(row, 0), at(row, 1), at(row, 2), at(row, 3)];
            out.push(Candidate {
                class,
                score,
                corners: corners(b, format),
            });
        }
    }
    Ok(out)
}

/// Intersection over union of two detected boxes.
pub(super) fn box_iou(a: &DetectedBox, b: &DetectedBox) -> f32 {
    let corners = |d: &DetectedBox| [d.x, d.y, d.x + d.w, d.y + d.h];
    iou(&corners(a), &corners(b))
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |c: &[f32; 4]| (c[2] - c[0]).max(0.0) * (c[3] - c[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy non-maximum suppression per class: best first, dropping same-class boxes that overlap
/// a kept one by more than `threshold`; at most `max` boxes.
pub fn nms(mut candidates: Vec<Candidate>, threshold: f32, max: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::new();
    // Kept boxes by class: a candidate is compared with its own class only.
    let mut kept_by_class: std::collections::HashMap<usize, Vec<[f32; 4]>> = Default::default();
    for c in candidates {
        if kept.len() >= max {
            break;
        }
        let same_class = kept_by_class.entry(c.class).or_default();
        if same_class.iter().all(|k| iou(k, &c.corners) <= threshold) {
            same_class.push(c.corners);
            kept.push(c);
        }
    }
    kept
}

impl Detector {
    /// Checks the config against the model's outputs and loads the labels.
    pub fn new(
        config: &DetectConfig,
        outputs: &[String],
        input_size: Option<(u32, u32)>,
        labels: Vec<String>,
    ) -> Result<Self, String> {
        let index = |name: &str| {
            outputs.iter().position(|o| o == name).ok_or_else(|| {
                format!(
                    "no output \"{name}\"; the model's outputs are: {}",
                    outputs.join(", ")
                )
            })
        };
        let picked = match config.format {
            DetectFormat::Yolo => vec![config.output.as_deref().map_or(Ok(0), index)?],
            DetectFormat::Boxes => {
                let mut v = vec![
                    index(config.boxes.as_deref().unwrap_or_default())?,
                    index(config.scores.as_deref().unwrap_or_default())?,
                ];
                if let Some(c) = &config.classes {
                    v.push(index(c)?);
                }
                v
            }
        };
        let input_size = match (config.pixel_coordinates, input_size) {
            (false, _) => (1.0, 1.0),
            (true, Some((w, h))) => (w as f32, h as f32),
            (true, None) => {
                return Err(
                    "pixel_coordinates needs an image model (to know the input size)".into(),
                )
            }
        };
        Ok(Self {
            config: config.clone(),
            outputs: picked,
            labels,
            input_size,
        })
    }

    /// Boxes for one frame's outputs.
    pub fn apply(&self, outputs: &[Tensor]) -> Result<Vec<DetectedBox>, PipelineError> {
        let c = &self.config;
        let get = |i: usize| {
            outputs.get(self.outputs[i]).ok_or_else(|| {
                PipelineError::Frame(format!("model returned no output {}", self.outputs[i]))
            })
        };
        let candidates = match c.format {
            DetectFormat::Yolo => {
                let t = get(0)?;
                with_values_f32(t, |values| {
                    decode_yolo(
                        values,
                        t.shape(),
                        c.objectness,
                        c.transposed,
                        c.box_format.unwrap_or(BoxFormat::Cxcywh),
                        c.score_threshold,
                    )
                })?
                .map_err(PipelineError::Frame)?
            }
            DetectFormat::Boxes => self.decode_box_outputs(
                get(0)?,
                get(1)?,
                self.outputs.get(2).map(|_| get(2)).transpose()?,
            )?,
        };
        let (w, h) = self.input_size;
        Ok(nms(candidates, c.iou_threshold, c.max_detections)
            .into_iter()
            .map(|d| {
                let [x0, y0, x1, y1] = d.corners;
                let clamp = |v: f32| v.clamp(0.0, 1.0);
                let (x0, y0, x1, y1) = (clamp(x0 / w), clamp(y0 / h), clamp(x1 / w), clamp(y1 / h));
                DetectedBox {
                    label: self
                        .labels
                        .get(d.class)
                        .cloned()
                        .unwrap_or_else(|| d.class.to_string()),
                    index: d.class,
                    score: d.score,
                    x: x0,
                    y: y0,
                    w: x1 - x0,
                    h: y1 - y0,
                }
            })
            .collect())
    }

    fn decode_box_outputs(
        &self,
        boxes: &Tensor,
        scores: &Tensor,
        classes: Option<&Tensor>,
    ) -> Result<Vec<Candidate>, PipelineError> {
        let c = &self.config;
        let b = values_f32(boxes)?;
        let n = b.len() / 4;
        let s = values_f32(scores)?;
        let per_box = s.len() / n.max(1);
        if n == 0 || b.len() % 4 != 0 || per_box == 0 || s.len() % n != 0 {
            return Err(PipelineError::Frame(format!(
                "boxes {:?} and scores {:?} do not describe the same boxes",
                boxes.shape(),
                scores.shape()
            )));
        }
        let cls = classes.map(values_f32).transpose()?;
        let format = c.box_format.unwrap_or(BoxFormat::Xyxy);
        let mut out = Vec::new();
        for i in 0..n {
            let (class, score) = if per_box == 1 {
                (
                    cls.as_ref()
                        .and_then(|v| v.get(i))
                        .map_or(0, |v| *v as usize),
                    s[i],
                )
            } else {
                (0..per_box)
                    .map(|k| (k, s[i * per_box + k]))
                    .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
            };
            if score >= c.score_threshold {
                let bx = [b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]];
                out.push(Candidate {
                    class,
                    score,
                    corners: corners(bx, format),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolo_rows_are_decoded_thresholded_and_suppressed_per_class() {
        // Two overlapping class-1 boxes, one class-0 box on top of them, one weak box.
        #[rustfmt::skip]
        let rows = [
            50.0, 50.0, 20.0, 20.0, 0.9, 0.1, 0.9,
            52.0, 50.0, 20.0, 20.0, 0.8, 0.1, 0.9,
            50.0, 50.0, 20.0, 20.0, 0.9, 0.8, 0.1,
            10.0, 10.0, 4.0, 4.0, 0.1, 0.9, 0.1,
        ];
        let c = decode_yolo(&rows, &[1, 4, 7], true, false, BoxFormat::Cxcywh, 0.25).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].corners, [40.0, 40.0, 60.0, 60.0]);
        let kept = nms(c, 0.45, 10);
        let classes: Vec<(usize, f32)> = kept.iter().map(|k| (k.class, k.score)).collect();
        assert_eq!(classes.len(), 2, "{classes:?}");
        assert!(classes.contains(&(1, 0.9 * 0.9)) && classes.contains(&(0, 0.9 * 0.8)));
    }

    #[test]
    fn transposed_rows_without_objectness_match_the_row_layout() {
        // Same two candidates as columns, YOLOv8 style: [4 + C, N].
        #[rustfmt::skip]
        let cols = [
            10.0, 30.0,
            10.0, 30.0,
            4.0, 4.0,
            4.0, 4.0,
            0.7, 0.1,
            0.2, 0.6,
        ];
        let c = decode_yolo(&cols, &[1, 6, 2], false, true, BoxFormat::Cxcywh, 0.5).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].class, c[1].class), (0, 1));
        assert_eq!(c[1].corners, [28.0, 28.0, 32.0, 32.0]);
        assert!(decode_yolo(&cols, &[12], false, true, BoxFormat::Cxcywh, 0.5).is_err());
    }

    #[test]
    fn nms_keeps_at_most_max_and_separate_boxes() {
        let c = |x: f32, s: f32| Candidate {
            class: 0,
            score: s,
            corners: [x, 0.0, x + 10.0, 10.0],
        };
        let kept = nms(
            vec![c(0.0, 0.5), c(100.0, 0.9), c(200.0, 0.7), c(1.0, 0.6)],
            0.5,
            2,
        );
        let scores: Vec<f32> = kept.iter().map(|k| k.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }

    #[test]
    fn boxes_outputs_are_scaled_to_the_input_and_labelled() {
        let cfg = DetectConfig {
            format: DetectFormat::Boxes,
            output: None,
            objectness: true,
            transposed: false,
            boxes: Some("b".into()),
            scores: Some("s".into()),
            classes: Some("c".into()),
            box_format: None,
            pixel_coordinates: true,
            score_threshold: 0.5,
            iou_threshold: 0.5,
            max_detections: 10,
            labels: None,
        };
        let d = Detector::new(
            &cfg,
            &["b".into(), "s".into(), "c".into()],
            Some((100, 50)),
            vec!["cat".into(), "dog".into()],
        )
        .unwrap();
        let outputs = vec![
            Tensor::from_shape(&[2, 4], &[10f32, 5., 60., 25., 0., 0., 1., 1.]).unwrap(),
            Tensor::from_shape(&[2], &[0.9f32, 0.2]).unwrap(),
            Tensor::from_shape(&[2], &[1f32, 0.]).unwrap(),
        ];
        let boxes = d.apply(&outputs).unwrap();
        assert_eq!(boxes.len(), 1);
        let b = &boxes[0];
        assert_eq!((b.label.as_str(), b.index), ("dog", 1));
        assert_eq!((b.x, b.y, b.w, b.h), (0.1, 0.1, 0.5, 0.4));
        assert!(Detector::new(&cfg, &["b".into()], Some((1, 1)), vec![]).is_err());
    }
}
