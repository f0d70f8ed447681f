//! The model on the GPU: weights (and, later, the forward pass and KV cache).

pub mod weights;

pub use weights::{Bf16Matrix, ExpertWeights, F32Vector, LayerWeights, Weights};

use crate::config::ModelConfig;

/// Tokens one prefill chunk appends to the KV cache at most.
pub const PREFILL_CHUNK: usize = 512;
/// Bytes per cached K or V element (f16).
pub const KV_ELEMENT_BYTES: u64 = 2;

/// Positions the KV cache keeps for `layer` with a context of `ctx` tokens: all of them on
/// full-attention layers; on sliding layers a ring of the window plus one prefill chunk (a
/// chunk's queries still need the window before its first token), never more than `ctx`.
pub fn kv_positions(config: &ModelConfig, layer: usize, ctx: usize) -> usize {
    if config.is_sliding(layer) {
        (config.sliding_window + PREFILL_CHUNK).min(ctx)
    } else {
        ctx
    }
}

/// KV cache bytes (K and V, every layer) for a context of `ctx` tokens.
pub fn kv_cache_bytes(config: &ModelConfig, ctx: usize) -> u64 {
    (0..config.num_hidden_layers)
        .map(|l| {
            kv_positions(config, l, ctx) as u64 * config.kv_dim() as u64 * 2 * KV_ELEMENT_BYTES
        })
        .sum()
}
