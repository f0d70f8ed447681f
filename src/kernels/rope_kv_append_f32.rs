//! YaRN RoPE on q and k, and the KV-cache append, for the tokens of one step.

use super::{build, need, StepBuffer};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "rope_kv_append_f32";
const WG: u32 = 128;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub capacity: u32,
    pub qkv_stride: u32,
    pub _pad: [u32; 3],
}

impl Params {
    /// Workgroups for a step of `n_tokens` tokens.
    pub fn workgroups(&self, gpu: &Gpu, n_tokens: u32) -> [u32; 3] {
        let quads = self.head_dim / 4;
        gpu.grid((n_tokens * (self.n_heads + self.n_kv_heads) * quads).div_ceil(WG))
    }
}

/// Rotates q in place in `qkv` [n_tokens, qkv_stride] and writes rotated k and v to the caches
/// at slot position % capacity. `rope` is the [positions, head_dim/2] (cos, sin) table.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    step: &StepBuffer,
    max_tokens: u32,
    qkv: &GpuBuffer,
    rope: &GpuBuffer,
    k_cache: &GpuBuffer,
    v_cache: &GpuBuffer,
) -> Result<Dispatch> {
    need(
        qkv,
        max_tokens as u64 * params.qkv_stride as u64 * 4,
        SHADER,
    )?;
    let kv_words = params.n_kv_heads as u64 * params.capacity as u64 * params.head_dim as u64;
    let kv_bytes = kv_words * super::kv_element_bytes(gpu);
    need(k_cache, kv_bytes, SHADER)?;
    need(v_cache, kv_bytes, SHADER)?;
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &k_cache.label,
        &[
            step.buffer.as_entire_binding(),
            qkv.binding(),
            rope.binding(),
            k_cache.binding(),
            v_cache.binding(),
        ],
        params.workgroups(gpu, max_tokens),
    )
}
