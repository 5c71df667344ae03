//! An output tensor's values as f32, for the post-processors.

use super::PipelineError;
use tract_onnx::prelude::{DatumType, Tensor};

pub(super) fn values_f32(tensor: &Tensor) -> Result<Vec<f32>, PipelineError> {
    with_values_f32(tensor, <[f32]>::to_vec)
}

/// Calls `f` on the output's values in C order as f32: borrowed from the tensor when it already
/// holds contiguous f32 (the usual case, so large detector outputs are not copied), cast otherwise.
pub(super) fn with_values_f32<R>(
    tensor: &Tensor,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R, PipelineError> {
    if tensor.datum_type() == DatumType::F32 {
        if let Some(slice) = tensor
            .to_plain_array_view::<f32>()
            .ok()
            .as_ref()
            .and_then(|v| v.as_slice())
        {
            return Ok(f(slice));
        }
    }
    let cast = tensor
        .cast_to::<f32>()
        .map_err(|e| PipelineError::Frame(format!("output is not numeric: {e}")))?;
    let view = cast
        .to_plain_array_view::<f32>()
        .map_err(|e| PipelineError::Frame(e.to_string()))?;
    let values: Vec<f32> = view.iter().copied().collect();
    Ok(f(&values))
}
