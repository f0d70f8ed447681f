//! The KV cache: per layer, K and V as [kv_heads, capacity, head_dim], f32 unless `--kv f16`
//! (see `gpu::KvChoice`). Full-attention layers hold the whole
//! context; sliding layers hold a ring of window + prefill-chunk positions, enough for every
//! query of a prefill step to see its whole window (slot = position % capacity).

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::{Gpu, GpuBuffer};

pub struct LayerCache {
    pub k: GpuBuffer,
    pub v: GpuBuffer,
    /// Positions held (slot = position % capacity).
    pub capacity: u32,
    /// 0 for full attention, else the sliding window.
    pub window: u32,
}

/// Positions a layer's cache holds for a context of `ctx` and prefill steps of `chunk` tokens.
pub fn capacity(config: &ModelConfig, layer: usize, ctx: usize, chunk: usize) -> usize {
    if config.is_sliding(layer) {
        config.sliding_window.saturating_add(chunk).min(ctx)
    } else {
        ctx
    }
}

/// Bytes of the whole cache with `element_bytes` per element (2 for f16, 4 for f32).
/// Saturates instead of wrapping: callers bound `ctx` by the model's maximum (which the config
/// check keeps addressable), so u64::MAX only ever shows a caller that did not.
pub fn bytes(config: &ModelConfig, ctx: usize, chunk: usize, element_bytes: u64) -> u64 {
    (0..config.num_hidden_layers)
        .map(|l| {
            (capacity(config, l, ctx, chunk) as u64)
                .saturating_mul(config.kv_dim() as u64)
                .saturating_mul(2 * element_bytes)
        })
        .fold(0u64, u64::saturating_add)
}

pub fn allocate(
    gpu: &Gpu,
    config: &ModelConfig,
    ctx: usize,
    chunk: usize,
) -> Result<Vec<LayerCache>> {
    let element = gpu.precision().kv.element_bytes();
    (0..config.num_hidden_layers)
        .map(|l| {
            let cap = capacity(config, l, ctx, chunk);
            let bytes = (cap * config.kv_dim()) as u64 * element;
            Ok(LayerCache {
                k: gpu.storage(&format!("kv_cache.{l}.k"), bytes)?,
                v: gpu.storage(&format!("kv_cache.{l}.v"), bytes)?,
                capacity: cap as u32,
                window: if config.is_sliding(l) {
                    config.sliding_window as u32
                } else {
                    0
                },
            })
        })
        .collect()
}
