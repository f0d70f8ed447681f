//! Split-K attention for one query position (flash-decoding): per-chunk softmax partials,
//! with the step's RoPE and KV-cache append folded in (q, k and v come unrotated in `qkv`).

use super::{build, need, StepBuffer};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "attention_decode_f32";
/// Cached positions per workgroup (CHUNK in the shader).
pub const CHUNK: u32 = 128;
const WG: u32 = 256;
const MAX_GROUP: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub capacity: u32,
    /// 0: full causal attention; otherwise the sliding window.
    pub window: u32,
    pub qkv_stride: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// Chunks (workgroups per KV head) that a query at `pos` needs.
pub fn chunks(pos: u32, window: u32) -> u32 {
    let visible = if window > 0 {
        (pos + 1).min(window)
    } else {
        pos + 1
    };
    visible.div_ceil(CHUNK)
}

/// Floats in the partials buffer for up to `max_positions` visible positions.
pub fn partials_len(n_heads: u32, head_dim: u32, max_positions: u32) -> u64 {
    max_positions.div_ceil(CHUNK) as u64 * n_heads as u64 * (head_dim as u64 + 2)
}

/// Records the dispatch; its grid is set per step with [`grid`].
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    head_dim: u32,
    step: &StepBuffer,
    qkv: &GpuBuffer,
    k_cache: &GpuBuffer,
    v_cache: &GpuBuffer,
    partials: &GpuBuffer,
    rope: &GpuBuffer,
) -> Result<Dispatch> {
    let group = params.n_heads / params.n_kv_heads.max(1);
    if group == 0
        || group > MAX_GROUP
        || params.n_heads % params.n_kv_heads != 0
        || head_dim % 4 != 0
        || (2 * WG) % head_dim != 0
    {
        return Err(Error::Shape {
            what: format!("{SHADER}: heads / KV heads / head_dim"),
            expected: format!(
                "heads a multiple of KV heads, at most {MAX_GROUP} per KV head, head_dim a multiple of 4 dividing {}",
                2 * WG
            ),
            actual: format!("{} / {} / {head_dim}", params.n_heads, params.n_kv_heads),
        });
    }
    need(qkv, params.qkv_stride as u64 * 4, SHADER)?;
    let kv = params.n_kv_heads as u64 * params.capacity as u64 * head_dim as u64;
    need(k_cache, kv * super::kv_element_bytes(gpu), SHADER)?;
    need(v_cache, kv * super::kv_element_bytes(gpu), SHADER)?;
    need(
        partials,
        params.n_heads as u64 * (head_dim as u64 + 2) * 4,
        SHADER,
    )?;
    let constants = [
        ("CHUNK", CHUNK as f64),
        ("GROUP", group as f64),
        ("HEAD_DIM", head_dim as f64),
    ];
    build(
        gpu,
        SHADER,
        &constants,
        &params,
        &partials.label,
        &[
            step.buffer.as_entire_binding(),
            qkv.binding(),
            k_cache.binding(),
            v_cache.binding(),
            partials.binding(),
            rope.binding(),
        ],
        [1, params.n_kv_heads, 1],
    )
}

/// The grid for a query at `pos`.
pub fn grid(params: &Params, pos: u32) -> [u32; 3] {
    [chunks(pos, params.window), params.n_kv_heads, 1]
}
