//! A tensor as the rest of the engine sees it: canonical role, dtype, shape and bytes, whatever
//! layout it came from.

use std::borrow::Cow;

use crate::checkpoint::mxfp4;
use crate::checkpoint::names::{ExpertMatrix, LayerTensor, TensorId, TensorKind};
use crate::config::ModelConfig;
use crate::error::{comma_list, Result};

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

    pub fn name(self) -> &'static str {
        match self {
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::U8 => "U8",
        }
    }

    /// The engine's dtype for a safetensors dtype; `None` for dtypes no gpt-oss tensor uses.
    pub fn from_safetensors(d: safetensors::Dtype) -> Option<DType> {
        match d {
            safetensors::Dtype::BF16 => Some(DType::BF16),
            safetensors::Dtype::F32 => Some(DType::F32),
            safetensors::Dtype::U8 => Some(DType::U8),
            _ => None,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TensorKind {
    /// The dtypes a checkpoint may store this kind of tensor in. Gains, biases and sinks are
    /// BF16 in the published checkpoints, F32 in some re-exports (HF keeps norms in fp32).
    pub fn allowed_dtypes(self) -> &'static [DType] {
        match self {
            TensorKind::Matrix => &[DType::BF16],
            TensorKind::Norm | TensorKind::Bias | TensorKind::Sinks | TensorKind::ExpertBias => {
                &[DType::BF16, DType::F32]
            }
            TensorKind::ExpertBlocks | TensorKind::ExpertScales => &[DType::U8],
        }
    }
}

impl ExpertMatrix {
    /// (out, in) of one expert's matrix: [2I, H] for gate_up, [H, I] for down.
    pub fn out_in(self, c: &ModelConfig) -> (usize, usize) {
        match self {
            ExpertMatrix::GateUp => (2 * c.intermediate_size, c.hidden_size),
            ExpertMatrix::Down => (c.hidden_size, c.intermediate_size),
        }
    }
}

/// The shape of `id` in canonical form (see [`Tensor`]).
pub fn canonical_shape(c: &ModelConfig, id: TensorId) -> Vec<usize> {
    use LayerTensor::*;
    let (h, e) = (c.hidden_size, c.num_experts);
    let (q, kv) = (c.q_dim(), c.kv_dim());
    match id {
        TensorId::Embedding | TensorId::LmHead => vec![c.vocab_size, h],
        TensorId::FinalNorm => vec![h],
        TensorId::Layer(_, t) => match t {
            AttnNorm | MlpNorm | OBias => vec![h],
            QWeight => vec![q, h],
            QBias => vec![q],
            KWeight | VWeight => vec![kv, h],
            KBias | VBias => vec![kv],
            OWeight => vec![h, q],
            Sinks => vec![c.num_attention_heads],
            RouterWeight => vec![e, h],
            RouterBias => vec![e],
            GateUpBlocks | GateUpScales | GateUpBias | DownBlocks | DownScales | DownBias => {
                let m = t.expert_matrix().unwrap_or(ExpertMatrix::GateUp);
                let (out, inp) = m.out_in(c);
                match t.kind() {
                    TensorKind::ExpertBlocks => {
                        vec![e, out, inp / mxfp4::BLOCK, mxfp4::BLOCK_BYTES]
                    }
                    TensorKind::ExpertScales => vec![e, out, inp / mxfp4::BLOCK],
                    _ => vec![e, out],
                }
            }
        },
    }
}

/// Number of elements of a shape, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// "[64, 2880]", for messages.
pub fn shape_string(shape: &[usize]) -> String {
    format!("[{}]", comma_list(shape))
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
        // A trailing partial element is dropped: the caller's length check reports it.
        match self.dtype {
            DType::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
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
