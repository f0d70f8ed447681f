// What both attention kernels (attention_decode_f32, attention_prefill_f32) declare alike: the
// uniform (src/kernels' AttentionLayout, as the kernels read it), the step, the step's q, k and
// v, and the sliding window. The including kernel binds the KV cache at 3 and 4 (kv_cache.wgsl)
// and its own buffers from 5 on.

//!include step

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    capacity: u32,
    window: u32,      // 0: full causal attention
    qkv_stride: u32,
    scale: f32,       // 1 / sqrt(head_dim)
    keep_reads: u32,  // 0 (decode's prefetch_keep; unused elsewhere)
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;  // [n_tokens, qkv_stride]: q, k, v

// The first position the query at `pos` sees: 0, or pos - W + 1 on a sliding layer.
fn first_visible(pos: u32) -> u32 {
    if params.window > 0u && pos + 1u > params.window {
        return pos + 1u - params.window;
    }
    return 0u;
}
