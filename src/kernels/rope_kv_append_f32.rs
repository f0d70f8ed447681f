//! YaRN RoPE on q and k, and the KV-cache append, for the tokens of one step.

use super::AttentionStep;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "rope_kv_append_f32",
    params {
        n_heads: u32, n_kv_heads: u32, head_dim: u32, capacity: u32, qkv_stride: u32,
        _pad0: u32, _pad1: u32, _pad2: u32,
    }
    bindings { step: Uniform, qkv: ReadWrite, rope: Read, k_cache: ReadWrite, v_cache: ReadWrite }
}

const WG: u32 = 128;

/// Rotates q in place in `qkv` [n_tokens, qkv_stride] and writes rotated k and v to the caches
/// at slot position % capacity.
pub struct RopeKvAppend<'a> {
    pub attention: AttentionStep<'a>,
    /// The largest step: buffers are checked for it and the grid is set per step.
    pub max_tokens: u32,
    /// The [positions, head_dim / 2] (cos, sin) table.
    pub rope: &'a GpuBuffer,
}

impl RopeKvAppend<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let a = &self.attention;
        let sh = &a.layout;
        let [step, qkv, k_cache, v_cache] = a.bind(gpu, SHADER, self.max_tokens)?;
        let params = Params {
            n_heads: sh.n_heads,
            n_kv_heads: sh.n_kv_heads,
            head_dim: sh.head_dim,
            capacity: sh.capacity,
            qkv_stride: sh.qkv_stride,
            ..Default::default()
        };
        Bindings {
            step,
            qkv,
            rope: self.rope.binding(),
            k_cache,
            v_cache,
        }
        .build(
            gpu,
            &[],
            &params,
            &a.k_cache.label,
            self.workgroups(gpu, self.max_tokens),
        )
    }

    /// Workgroups for a step of `n_tokens` tokens.
    pub fn workgroups(&self, gpu: &Gpu, n_tokens: u32) -> [u32; 3] {
        let sh = &self.attention.layout;
        let quads = sh.head_dim / 4;
        gpu.grid((n_tokens * (sh.n_heads + sh.n_kv_heads) * quads).div_ceil(WG))
    }
}
