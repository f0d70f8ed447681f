//! Checkpoint layouts and how each canonical tensor is found in them.
//!
//! - Hugging Face MXFP4 (`model.*`, `lm_head.weight`): stored exactly in canonical form.
//! - Original (`block.*`, spec 2.1): the same bytes under other names, except that q, k and v
//!   are row ranges of the fused `attn.qkv` tensors (borrowed, not copied).
//! - Hugging Face BF16 experts (`mlp.experts.gate_up_proj` [E, H, 2I] and `down_proj` [E, I, H],
//!   [in, out] as transformers saves them): transposed and quantized to MXFP4 on load.
//! - Both key sets in one folder: the `model.*` keys win and `block.*` is ignored.

use serde::Serialize;

use crate::checkpoint::mxfp4;
use crate::checkpoint::names::{
    is_hf_name, is_original_name, ExpertMatrix, LayerTensor, QkvPart, TensorId, TensorKind,
};
use crate::checkpoint::shards::Shards;
use crate::checkpoint::tensor::{canonical_shape, DType};
use crate::config::ModelConfig;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// `model.*` keys, experts as MXFP4 blocks and scales.
    HfMxfp4,
    /// `model.*` keys, experts as dense BF16 [E, in, out], quantized to MXFP4 on load.
    HfBf16,
    /// OpenAI's `block.*` keys with fused qkv.
    Original,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::HfMxfp4 => "Hugging Face, MXFP4 experts",
            Layout::HfBf16 => "Hugging Face, BF16 experts (quantized to MXFP4 on load)",
            Layout::Original => "original (block.*)",
        }
    }
}

/// Which half of a quantized dense expert matrix a tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DensePart {
    Blocks,
    Scales,
}

/// How a canonical tensor is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// The stored tensor is the canonical one.
    Whole,
    /// Rows [first, first + rows) of the stored tensor (its first dimension).
    Rows { first: usize, rows: usize },
    /// Half of the MXFP4 encoding of a dense [E, in, out] matrix.
    Dense {
        matrix: ExpertMatrix,
        part: DensePart,
    },
}

/// Where and in what form a layout stores one canonical tensor.
#[derive(Clone, Debug)]
pub struct StoredForm {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtypes: &'static [DType],
    pub storage: Storage,
}

/// Finds the layout from the tensor names present.
pub fn detect(shards: &Shards) -> Result<(Layout, bool)> {
    let (mut hf, mut orig) = (false, false);
    for e in shards.entries() {
        hf |= is_hf_name(&e.name);
        orig |= is_original_name(&e.name);
    }
    if hf {
        let has = |n: &str| shards.get(n).is_some();
        let blocks = TensorId::Layer(0, LayerTensor::GateUpBlocks).hf_name();
        let dense = ExpertMatrix::GateUp.hf_dense_name(0);
        let layout = if !has(&blocks) && has(&dense) {
            Layout::HfBf16
        } else {
            // Also when neither is there: the missing-tensor error then names the MXFP4 key.
            Layout::HfMxfp4
        };
        return Ok((layout, orig));
    }
    if orig {
        return Ok((Layout::Original, false));
    }
    let mut names: Vec<&str> = shards.entries().map(|e| e.name.as_str()).collect();
    names.sort();
    names.truncate(5);
    Err(Error::Checkpoint {
        path: shards.dir.clone(),
        message: format!(
            "no gpt-oss tensors: expected names starting with model./lm_head. (Hugging Face) or \
             block./embedding. (original); found {}",
            if names.is_empty() {
                "no tensors".to_string()
            } else {
                names.join(", ")
            }
        ),
    })
}

/// Where `layout` keeps the canonical tensor `id`, and the shape and dtypes it must have there.
pub fn stored_form(layout: Layout, c: &ModelConfig, id: TensorId) -> StoredForm {
    let kind = id.kind();
    let canonical = StoredForm {
        name: id.hf_name(),
        shape: canonical_shape(c, id),
        dtypes: kind.allowed_dtypes(),
        storage: Storage::Whole,
    };
    match layout {
        Layout::HfMxfp4 => canonical,
        Layout::HfBf16 => match id {
            TensorId::Layer(l, t)
                if matches!(kind, TensorKind::ExpertBlocks | TensorKind::ExpertScales) =>
            {
                let matrix = t.expert_matrix().unwrap_or(ExpertMatrix::GateUp);
                let (out, inp) = matrix.out_in(c);
                StoredForm {
                    name: matrix.hf_dense_name(l),
                    shape: vec![c.num_experts, inp, out],
                    dtypes: &[DType::BF16, DType::F32],
                    storage: Storage::Dense {
                        matrix,
                        part: if kind == TensorKind::ExpertBlocks {
                            DensePart::Blocks
                        } else {
                            DensePart::Scales
                        },
                    },
                }
            }
            _ => canonical,
        },
        Layout::Original => {
            let orig = id.original_name();
            match orig.qkv {
                None => StoredForm {
                    name: orig.name,
                    ..canonical
                },
                Some(part) => {
                    let (q, kv) = (c.q_dim(), c.kv_dim());
                    let (first, rows) = match part {
                        QkvPart::Q => (0, q),
                        QkvPart::K => (q, kv),
                        QkvPart::V => (q + kv, kv),
                    };
                    let mut shape = canonical.shape.clone();
                    if let Some(d) = shape.first_mut() {
                        *d = q + 2 * kv;
                    }
                    StoredForm {
                        name: orig.name,
                        shape,
                        dtypes: canonical.dtypes,
                        storage: Storage::Rows { first, rows },
                    }
                }
            }
        }
    }
}

/// Transposes dense experts [E, in, out] (BF16 or F32 bytes) to [E, out, in] and quantizes each
/// row's 32-blocks to MXFP4 (see [`mxfp4::quantize`]). Returns (blocks, scales). A NaN or an
/// infinity has no MXFP4 encoding: it is an error naming `what` and the element.
pub fn quantize_dense(
    data: &[u8],
    dtype: DType,
    experts: usize,
    inp: usize,
    out: usize,
    what: &str,
) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let size = dtype.size();
    let per_expert = inp * out;
    if data.len() != experts * per_expert * size {
        return Err(format!(
            "{} bytes, expected {} for [{experts}, {inp}, {out}] {dtype}",
            data.len(),
            experts * per_expert * size
        ));
    }
    let read = |i: usize| -> f32 {
        let b = &data[i * size..(i + 1) * size];
        match dtype {
            DType::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::U8 => b[0] as f32,
        }
    };
    let n_blocks = experts * out * inp / mxfp4::BLOCK;
    let mut blocks = Vec::with_capacity(n_blocks * mxfp4::BLOCK_BYTES);
    let mut scales = Vec::with_capacity(n_blocks);
    let mut t = vec![0f32; per_expert];
    for e in 0..experts {
        let base = e * per_expert;
        // Read the stored [in, out] slab in order, write it transposed to [out, in].
        for k in 0..inp {
            for o in 0..out {
                let v = read(base + k * out + o);
                if !v.is_finite() {
                    return Err(format!(
                        "{what}: {v} at [expert {e}, in {k}, out {o}] has no MXFP4 encoding"
                    ));
                }
                t[o * inp + k] = v;
            }
        }
        let (b, s) = mxfp4::quantize(&t, inp);
        blocks.extend_from_slice(&b);
        scales.extend_from_slice(&s);
    }
    Ok((blocks, scales))
}

/// The flat index of the first 0xFF scale byte, with its [expert, row, block] position when
/// the tensor is [E, rows, blocks].
pub fn find_nan_scale(scales: &[u8], shape: &[usize]) -> Option<(usize, String)> {
    let i = scales.iter().position(|&b| b == 0xFF)?;
    let position = match shape {
        [_, rows, blocks] if *rows > 0 && *blocks > 0 => format!(
            "expert {}, row {}, block {}",
            i / (rows * blocks),
            (i / blocks) % rows,
            i % blocks
        ),
        _ => format!("byte {i}"),
    };
    Some((i, position))
}
