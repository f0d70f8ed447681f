//! Tiled causal attention with sinks and sliding window for a prefill step, over the cache.

use super::{build, need, StepBuffer};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "attention_prefill_f32";
const BQ: u32 = 16;
/// Largest head_dim that fits the kernel's workgroup memory on every adapter (32 KiB).
pub const MAX_HEAD_DIM: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub capacity: u32,
    pub window: u32,
    pub qkv_stride: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// `out` [n_tokens, heads, D] for the step's queries (q already rotated, in `qkv`).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    head_dim: u32,
    max_tokens: u32,
    step: &StepBuffer,
    qkv: &GpuBuffer,
    k_cache: &GpuBuffer,
    v_cache: &GpuBuffer,
    sinks: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<Dispatch> {
    if head_dim > MAX_HEAD_DIM || head_dim % 2 != 0 || params.n_heads % params.n_kv_heads != 0 {
        return Err(Error::Shape {
            what: format!("{SHADER}: head_dim / heads"),
            expected: format!("even head_dim up to {MAX_HEAD_DIM}, heads a multiple of KV heads"),
            actual: format!("{head_dim} / {} / {}", params.n_heads, params.n_kv_heads),
        });
    }
    need(
        qkv,
        max_tokens as u64 * params.qkv_stride as u64 * 4,
        SHADER,
    )?;
    let kv = params.n_kv_heads as u64 * params.capacity as u64 * head_dim as u64;
    need(k_cache, kv * super::kv_element_bytes(gpu), SHADER)?;
    need(v_cache, kv * super::kv_element_bytes(gpu), SHADER)?;
    need(sinks, params.n_heads as u64 * 4, SHADER)?;
    need(
        out,
        max_tokens as u64 * params.n_heads as u64 * head_dim as u64 * 4,
        SHADER,
    )?;
    build(
        gpu,
        SHADER,
        &[("HEAD_DIM", head_dim as f64)],
        &params,
        &out.label,
        &[
            step.buffer.as_entire_binding(),
            qkv.binding(),
            k_cache.binding(),
            v_cache.binding(),
            sinks.binding(),
            out.binding(),
        ],
        grid(&params, max_tokens),
    )
}

/// The grid for a step of `n_tokens` queries.
pub fn grid(params: &Params, n_tokens: u32) -> [u32; 3] {
    [n_tokens.div_ceil(BQ), params.n_heads, 1]
}
