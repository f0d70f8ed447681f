// attention_combine_f32: merges attention_decode_f32's per-chunk partials with the sink.
// One workgroup per query head: M = max(sink, m_c), L = exp(sink - M) + sum_c l_c exp(m_c - M),
// out = sum_c o_c exp(m_c - M) / L. The sink's probability mass has no value vector, so the
// weights sum to less than one. The chunks are spread over the invocations (at 32k positions
// there are 256 of them: a serial walk was 72 us), and every sum runs in a fixed order: each
// invocation's share in chunk order, then a tree over the invocations (deterministic).

//!include step

const WG: u32 = 256u;
// Chunk weights exp(m_c - M) kept in workgroup memory; more chunks recompute theirs.
const MAX_CHUNKS: u32 = 2048u;
// Chunks whose partial outputs an invocation loads at once.
const UNROLL: u32 = 8u;

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

var<workgroup> red: array<f32, WG>;
var<workgroup> weights: array<f32, MAX_CHUNKS>;

// The tree over red[0..WG) in a fixed order, by max or by sum; every invocation calls it.
fn reduce(lid: u32, v: f32, is_max: bool) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if lid < s {
            let o = red[lid + s];
            red[lid] = select(red[lid] + o, max(red[lid], o), is_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

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

    var m_part = sink;
    for (var c = lid; c < n_chunks; c += WG) {
        m_part = max(m_part, partials[(c * params.n_heads + h) * stride + params.head_dim]);
    }
    let m = reduce(lid, m_part, true);

    var l_part = 0.0;
    for (var c = lid; c < n_chunks; c += WG) {
        let base = (c * params.n_heads + h) * stride;
        let w = exp(partials[base + params.head_dim] - m);
        if c < MAX_CHUNKS {
            weights[c] = w;
        }
        l_part += partials[base + params.head_dim + 1u] * w;
    }
    let l = exp(sink - m) + reduce(lid, l_part, false);

    // Output: invocation (lane, d) sums chunks lane, lane + lanes, ... of dim d, UNROLL
    // chunks' loads at once; the lanes' sums then meet in red in lane order.
    let lanes = max(WG / params.head_dim, 1u);
    let lane = lid / params.head_dim;
    for (var d0 = 0u; d0 < params.head_dim; d0 += WG) {
        let d = d0 + lid % params.head_dim;
        var o = 0.0;
        if lane < lanes && d < params.head_dim {
            for (var c0 = lane; c0 < n_chunks; c0 += UNROLL * lanes) {
                var v: array<f32, UNROLL>;
                var w: array<f32, UNROLL>;
                for (var u = 0u; u < UNROLL; u++) {
                    let c = min(c0 + u * lanes, n_chunks - 1u);
                    let base = (c * params.n_heads + h) * stride;
                    v[u] = partials[base + d];
                    if c < MAX_CHUNKS {
                        w[u] = weights[c];
                    } else {
                        w[u] = exp(partials[base + params.head_dim] - m);
                    }
                }
                for (var u = 0u; u < UNROLL; u++) {
                    if c0 + u * lanes < n_chunks {
                        o += v[u] * w[u];
                    }
                }
            }
        }
        red[lid] = o;
        workgroupBarrier();
        if lane == 0u && d < params.head_dim {
            var sum = 0.0;
            for (var t = 0u; t < lanes; t++) {
                sum += red[t * params.head_dim + lid];
            }
            out[h * params.head_dim + d] = sum / l;
        }
        workgroupBarrier();
    }
}
