// attention_combine_f32: merges attention_decode_f32's per-chunk partials with the sink.
// One workgroup per query head: M = max(sink, m_c), L = exp(sink - M) + sum_c l_c exp(m_c - M),
// out = sum_c o_c exp(m_c - M) / L. The sink's probability mass has no value vector, so the
// weights sum to less than one. Chunks are merged in order (deterministic).

//!include step

const WG: u32 = 64u;

struct Params {
    n_heads: u32,
    head_dim: u32,
    window: u32,
    chunk: u32,       // CHUNK of attention_decode_f32
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> partials: array<f32>;    // [chunks, n_heads, D + 2]
@group(0) @binding(3) var<storage, read> sinks: array<f32>;       // [n_heads]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;   // [n_heads, D]

@compute @workgroup_size(WG)
fn attention_combine_f32(@builtin(local_invocation_index) lid: u32,
                         @builtin(workgroup_id) wg_id: vec3<u32>) {
    let h = wg_id.x;
    let pos = step.pos0 + step.n_tokens - 1u;
    var lo = 0u;
    if params.window > 0u && pos + 1u > params.window {
        lo = pos + 1u - params.window;
    }
    let n_chunks = (pos + 1u - lo + params.chunk - 1u) / params.chunk;
    let stride = params.head_dim + 2u;
    let sink = sinks[h];
    var m = sink;
    for (var c = 0u; c < n_chunks; c++) {
        m = max(m, partials[(c * params.n_heads + h) * stride + params.head_dim]);
    }
    var l = exp(sink - m);
    for (var c = 0u; c < n_chunks; c++) {
        let base = (c * params.n_heads + h) * stride;
        l += partials[base + params.head_dim + 1u] * exp(partials[base + params.head_dim] - m);
    }
    for (var d = lid; d < params.head_dim; d += WG) {
        var o = 0.0;
        for (var c = 0u; c < n_chunks; c++) {
            let base = (c * params.n_heads + h) * stride;
            o += partials[base + d] * exp(partials[base + params.head_dim] - m);
        }
        out[h * params.head_dim + d] = o / l;
    }
}
