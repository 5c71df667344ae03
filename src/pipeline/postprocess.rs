//! Output tensors → the `result` object of a prediction, as declared in the model's `postprocess` table.

use super::detect::Detector;
use super::output_values::values_f32;
use super::PipelineError;
use crate::config::{Activation, PostprocessConfig};
use crate::prediction::{ClassScore, InferenceResult, RawOutput};
use std::collections::BTreeMap;
use tract_onnx::prelude::Tensor;

/// Turns output tensors into a result.
#[derive(Debug, Clone)]
pub struct Postprocessor {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Classify(Classifier),
    Detect(Detector),
    Raw {
        outputs: Vec<(usize, String)>,
        max_values: usize,
        activation: Activation,
    },
}

fn read_labels(model: &str, path: Option<&std::path::Path>) -> Result<Vec<String>, PipelineError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    Ok(std::fs::read_to_string(path)
        .map_err(|e| PipelineError::Setup {
            model: model.to_string(),
            message: format!("cannot read labels {}: {e}", path.display()),
        })?
        .lines()
        .map(|l| l.trim().to_string())
        .collect())
}

fn output_index(model: &str, names: &[String], wanted: &str) -> Result<usize, PipelineError> {
    names
        .iter()
        .position(|n| n == wanted)
        .ok_or_else(|| PipelineError::Setup {
            model: model.to_string(),
            message: format!(
                "postprocess names output \"{wanted}\"; the model's outputs are: {}",
                names.join(", ")
            ),
        })
}

impl Postprocessor {
    /// Checks `config` against the model's outputs and loads the labels file. `input_size` is the
    /// model input's (width, height) for image models, to report boxes in [0, 1].
    pub fn new(
        model: &str,
        config: &PostprocessConfig,
        outputs: &[String],
        input_size: Option<(u32, u32)>,
    ) -> Result<Self, PipelineError> {
        let kind =
            match config {
                PostprocessConfig::Classify {
                    output,
                    activation,
                    top_k,
                    labels,
                    threshold,
                } => {
                    let output = match output {
                        Some(name) => output_index(model, outputs, name)?,
                        None => 0,
                    };
                    let labels = read_labels(model, labels.as_deref())?;
                    Kind::Classify(Classifier {
                        output,
                        activation: *activation,
                        top_k: *top_k,
                        labels,
                        threshold: *threshold,
                    })
                }
                PostprocessConfig::Detect(d) => {
                    let labels = read_labels(model, d.labels.as_deref())?;
                    Kind::Detect(Detector::new(d, outputs, input_size, labels).map_err(
                        |message| PipelineError::Setup {
                            model: model.to_string(),
                            message,
                        },
                    )?)
                }
                PostprocessConfig::Raw {
                    outputs: wanted,
                    max_values,
                    activation,
                } => {
                    let picked = match wanted {
                        Some(names) => names
                            .iter()
                            .map(|n| Ok((output_index(model, outputs, n)?, n.clone())))
                            .collect::<Result<_, PipelineError>>()?,
                        None => outputs.iter().cloned().enumerate().collect(),
                    };
                    Kind::Raw {
                        outputs: picked,
                        max_values: *max_values,
                        activation: *activation,
                    }
                }
            };
        Ok(Self { kind })
    }

    /// Builds the result from the model's outputs (graph order).
    pub fn apply(&self, outputs: &[Tensor]) -> Result<InferenceResult, PipelineError> {
        match &self.kind {
            Kind::Classify(c) => c.apply(outputs),
            Kind::Detect(d) => Ok(InferenceResult::Boxes {
                boxes: d.apply(outputs)?,
            }),
            Kind::Raw {
                outputs: picked,
                max_values,
                activation,
            } => {
                let mut result = BTreeMap::new();
                for (ix, name) in picked {
                    let tensor = outputs.get(*ix).ok_or_else(|| {
                        PipelineError::Frame(format!("model returned no output \"{name}\""))
                    })?;
                    let mut values = values_f32(tensor)?;
                    activate(&mut values, *activation);
                    values.truncate(*max_values);
                    result.insert(
                        name.clone(),
                        RawOutput {
                            shape: tensor.shape().to_vec(),
                            values,
                        },
                    );
                }
                Ok(InferenceResult::Raw { outputs: result })
            }
        }
    }
}

/// A classifier's post-processing: the `top_k` best classes of output `output` (graph order)
/// after `activation`, those at or above `threshold`, named by `labels` (by index where it has
/// none).
#[derive(Debug, Clone)]
struct Classifier {
    output: usize,
    activation: Activation,
    top_k: usize,
    labels: Vec<String>,
    threshold: f32,
}

impl Classifier {
    /// The best classes from the model's outputs (graph order).
    fn apply(&self, outputs: &[Tensor]) -> Result<InferenceResult, PipelineError> {
        let tensor = outputs.get(self.output).ok_or_else(|| {
            PipelineError::Frame(format!("model returned no output {}", self.output))
        })?;
        let mut scores = values_f32(tensor)?;
        // A batch of one: classes are the last axis.
        let classes = tensor.shape().last().copied().unwrap_or(1).max(1);
        scores.truncate(classes);
        activate(&mut scores, self.activation);
        let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
        // Best first, ties by class index. Only the best `top_k` are put in order: a
        // selection is linear, sorting a thousand classes is not.
        let best_first =
            |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.top_k < ranked.len() {
            if self.top_k > 0 {
                ranked.select_nth_unstable_by(self.top_k - 1, best_first);
            }
            ranked.truncate(self.top_k);
        }
        ranked.sort_unstable_by(best_first);
        let top = ranked
            .into_iter()
            .filter(|(_, s)| *s >= self.threshold)
            .take(self.top_k)
            .map(|(index, score)| ClassScore {
                label: self
                    .labels
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| index.to_string()),
                index,
                score,
            })
            .collect();
        Ok(InferenceResult::Classes { top })
    }
}

fn activate(values: &mut [f32], activation: Activation) {
    match activation {
        Activation::None => {}
        Activation::Sigmoid => values
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        Activation::Softmax => {
            let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in values.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            if sum > 0.0 {
                values.iter_mut().for_each(|v| *v /= sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(
        top_k: usize,
        threshold: f32,
        labels: Option<std::path::PathBuf>,
    ) -> PostprocessConfig {
        PostprocessConfig::Classify {
            output: None,
            activation: Activation::Softmax,
            top_k,
            labels,
            threshold,
        }
    }

    #[test]
    fn softmax_top_k_with_labels_and_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "cat\ndog\nbird\n").unwrap();
        let out = vec![Tensor::from_shape(&[1, 3], &[1.0f32, 3.0, 2.0]).unwrap()];
        let p =
            Postprocessor::new("m", &classify(2, 0.0, Some(labels)), &["y".into()], None).unwrap();
        let InferenceResult::Classes { top } = p.apply(&out).unwrap() else {
            panic!("not classes")
        };
        assert_eq!(top.len(), 2);
        assert_eq!((top[0].label.as_str(), top[0].index), ("dog", 1));
        assert_eq!((top[1].label.as_str(), top[1].index), ("bird", 2));
        let expected = 3f32.exp() / (1f32.exp() + 2f32.exp() + 3f32.exp());
        assert!((top[0].score - expected).abs() < 1e-6);

        let p = Postprocessor::new("m", &classify(3, 0.5, None), &["y".into()], None).unwrap();
        let InferenceResult::Classes { top } = p.apply(&out).unwrap() else {
            panic!("not classes")
        };
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].label, "1");
    }

    #[test]
    fn top_k_equals_a_full_sort_with_ties_by_class_index() {
        // 1000 scores with many ties (values repeat every 37 classes).
        let scores: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 37) as f32).collect();
        let out = vec![Tensor::from_shape(&[1, 1000], &scores).unwrap()];
        let mut sorted: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        for k in [0, 1, 5, 30, 999, 1000, 1500] {
            let mut cfg = classify(k, 0.0, None);
            if let PostprocessConfig::Classify { activation, .. } = &mut cfg {
                *activation = Activation::None;
            }
            let p = Postprocessor::new("m", &cfg, &["y".into()], None).unwrap();
            let InferenceResult::Classes { top } = p.apply(&out).unwrap() else {
                panic!("not classes")
            };
            let got: Vec<(usize, f32)> = top.iter().map(|c| (c.index, c.score)).collect();
            assert_eq!(got, sorted[..k.min(1000)], "top {k}");
        }
    }

    #[test]
    fn raw_reports_first_values_of_named_outputs_with_sigmoid() {
        let cfg = PostprocessConfig::Raw {
            outputs: Some(vec!["b".into()]),
            max_values: 2,
            activation: Activation::Sigmoid,
        };
        let p = Postprocessor::new("m", &cfg, &["a".into(), "b".into()], None).unwrap();
        let out = vec![
            Tensor::from_shape(&[1], &[5.0f32]).unwrap(),
            Tensor::from_shape(&[3], &[0.0f32, 100.0, -100.0]).unwrap(),
        ];
        let InferenceResult::Raw { outputs } = p.apply(&out).unwrap() else {
            panic!("not raw")
        };
        assert_eq!(outputs["b"].shape, vec![3]);
        assert_eq!(outputs["b"].values, vec![0.5, 1.0]);
        assert!(Postprocessor::new(
            "m",
            &PostprocessConfig::Raw {
                outputs: Some(vec!["zz".into()]),
                max_values: 1,
                activation: Activation::None
            },
            &["a".into()],
            None
        )
        .unwrap_err()
        .to_string()
        .contains("\"zz\""));
    }

    #[test]
    fn result_json_matches_the_documented_shapes() {
        let r = InferenceResult::Classes {
            top: vec![ClassScore {
                label: "red".into(),
                index: 0,
                score: 0.5,
            }],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"top":[{"label":"red","index":0,"score":0.5}]}"#
        );
    }
}
