//! A tensor as the rest of the engine sees it: canonical role, dtype, shape and bytes, whatever
//! layout it came from.

use std::borrow::Cow;

use crate::checkpoint::names::TensorId;
use crate::config::ModelConfig;
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DType {
    BF16,
    F32,
    U8,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::BF16 => 2,
            DType::F32 => 4,
            DType::U8 => 1,
        }
    }
}

/// One tensor in canonical form. Shapes are those of the Hugging Face MXFP4 layout: weight
/// matrices [out, in] in BF16; expert blocks [E, out, in/32, 16] and scales [E, out, in/32] in
/// U8; norms, biases and sinks in BF16 or F32 as stored.
pub struct Tensor<'a> {
    pub id: TensorId,
    /// Where it came from, for messages: "file: name" (or "synthetic").
    pub source: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Row-major little-endian bytes: borrowed from the mmap where no conversion was needed.
    pub data: Cow<'a, [u8]>,
}

impl Tensor<'_> {
    /// Small vectors (norm gains, biases, sinks) as f32, whatever they were stored as.
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&self.data),
            DType::BF16 => self
                .data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            DType::U8 => self.data.iter().map(|&b| b as f32).collect(),
        }
    }
}

/// Anything that can provide the model's tensors: a checkpoint on disk, or synthetic weights.
pub trait WeightSource {
    fn config(&self) -> &ModelConfig;
    fn tensor(&self, id: TensorId) -> Result<Tensor<'_>>;
}
