//! Checkpoint layouts and how each canonical tensor is found in them.
//!
//! - Hugging Face MXFP4 (`model.*`, `lm_head.weight`): stored exactly in canonical form.
//! - Original (`block.*`, the module paths of
//!   https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py): the same bytes under
//!   other names, except that q, k and v are row ranges of the fused `attn.qkv` tensors
//!   (borrowed, not copied).
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
/// infinity has no MXFP4 encoding: it is an error naming `what` and the element. Experts are
/// spread over the CPU's threads: a gpt-oss-20b gate_up matrix is half a billion values.
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
    if data.len() != experts * per_expert * size || inp % mxfp4::BLOCK != 0 {
        return Err(format!(
            "{} bytes, expected {} for [{experts}, {inp}, {out}] {dtype}",
            data.len(),
            experts * per_expert * size
        ));
    }
    let block_bytes = per_expert / mxfp4::BLOCK * mxfp4::BLOCK_BYTES;
    let scale_bytes = per_expert / mxfp4::BLOCK;
    let mut blocks = vec![0u8; experts * block_bytes];
    let mut scales = vec![0u8; experts * scale_bytes];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, experts.max(1));
    let per_thread = experts.div_ceil(threads).max(1);
    let results: Vec<std::result::Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = data
            .chunks(per_thread * per_expert * size)
            .zip(blocks.chunks_mut(per_thread * block_bytes))
            .zip(scales.chunks_mut(per_thread * scale_bytes))
            .enumerate()
            .map(|(chunk, ((src, b), s))| {
                let first = chunk * per_thread;
                scope.spawn(move || -> std::result::Result<(), String> {
                    let mut t = vec![0f32; per_expert];
                    for (j, ((src, b), s)) in src
                        .chunks_exact(per_expert * size)
                        .zip(b.chunks_exact_mut(block_bytes))
                        .zip(s.chunks_exact_mut(scale_bytes))
                        .enumerate()
                    {
                        transpose(src, dtype, inp, out, &mut t).map_err(|(k, o, v)| {
                            format!(
                                "{what}: {v} at [expert {}, in {k}, out {o}] has no MXFP4 \
                                 encoding",
                                first + j
                            )
                        })?;
                        for ((row, b), s) in t
                            .chunks_exact(mxfp4::BLOCK)
                            .zip(b.chunks_exact_mut(mxfp4::BLOCK_BYTES))
                            .zip(s.iter_mut())
                        {
                            let (qb, qs) = mxfp4::quantize_block(row);
                            b.copy_from_slice(&qb);
                            *s = qs;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(format!("{what}: quantizer thread failed")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok((blocks, scales))
}

/// One expert's [in, out] slab (BF16 or F32 bytes) into `t` as f32 [out, in], in square tiles
/// so that both sides stay in cache. Err((in, out, value)) at the first non-finite value.
fn transpose(
    src: &[u8],
    dtype: DType,
    inp: usize,
    out: usize,
    t: &mut [f32],
) -> std::result::Result<(), (usize, usize, f32)> {
    const TILE: usize = 64;
    let read = |i: usize| -> f32 {
        match dtype {
            DType::BF16 => {
                f32::from_bits((u16::from_le_bytes([src[2 * i], src[2 * i + 1]]) as u32) << 16)
            }
            DType::F32 => {
                f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
            }
            DType::U8 => src[i] as f32,
        }
    };
    for k0 in (0..inp).step_by(TILE) {
        for o0 in (0..out).step_by(TILE) {
            for k in k0..(k0 + TILE).min(inp) {
                for o in o0..(o0 + TILE).min(out) {
                    let v = read(k * out + o);
                    if !v.is_finite() {
                        return Err((k, o, v));
                    }
                    t[o * inp + k] = v;
                }
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(v: f32) -> [u8; 2] {
        half::bf16::from_f32(v).to_bits().to_le_bytes()
    }

    #[test]
    fn dense_quantization_matches_the_codec_on_every_expert() {
        // 5 experts (not a multiple of any thread count), in 64, out 3.
        let (e, i, o) = (5, 64, 3);
        let values: Vec<f32> = (0..e * i * o)
            .map(|x| ((x * 37 % 101) as f32 - 50.0) / 8.0)
            .collect();
        let data: Vec<u8> = values.iter().flat_map(|&v| bf16(v)).collect();
        let (b, s) = quantize_dense(&data, DType::BF16, e, i, o, "t").unwrap();
        let mut want_b = Vec::new();
        let mut want_s = Vec::new();
        for x in 0..e {
            let mut t = vec![0f32; i * o];
            for k in 0..i {
                for r in 0..o {
                    t[r * i + k] = values[x * i * o + k * o + r];
                }
            }
            let (qb, qs) = mxfp4::quantize(&t, i);
            want_b.extend(qb);
            want_s.extend(qs);
        }
        assert_eq!(b, want_b);
        assert_eq!(s, want_s);
    }

    #[test]
    fn dense_quantization_rejects_non_finite_values() {
        let (e, i, o) = (3, 32, 2);
        let mut data: Vec<u8> = (0..e * i * o).flat_map(|_| bf16(1.0)).collect();
        // expert 2, in 5, out 1
        let at = 2 * i * o + 5 * o + 1;
        data[2 * at..2 * at + 2].copy_from_slice(&bf16(f32::NAN));
        let err = quantize_dense(&data, DType::BF16, e, i, o, "w").unwrap_err();
        assert!(err.contains("[expert 2, in 5, out 1]"), "{err}");
        let err = quantize_dense(&data[1..], DType::BF16, e, i, o, "w").unwrap_err();
        assert!(err.contains("expected 384"), "{err}");
    }

    #[test]
    fn nan_scale_positions() {
        let mut s = vec![127u8; 4 * 6 * 3];
        assert_eq!(find_nan_scale(&s, &[4, 6, 3]), None);
        s[2 * 18 + 4 * 3 + 1] = 0xFF;
        assert_eq!(
            find_nan_scale(&s, &[4, 6, 3]),
            Some((49, "expert 2, row 4, block 1".to_string()))
        );
    }
}
