// moe_gate_up_f32_mf4w: for one token and each selected expert (grid y = slot), the MXFP4
// gate_up projection of RMSNorm(x), then clamped SwiGLU: act[slot, i] = g sigmoid(1.702 g)(u+1)
// with g = min(h[2i], limit), u = clamp(h[2i+1], -limit, limit) (rows interleave gate and up).
// Each workgroup recomputes the router's top-k (tiny) and the norm, then computes ROWS rows:
// WG/ROWS invocations per row, each summing lut[nibble] * x over whole 32-blocks and scaling
// each block sum once (overflow-safe), then a fixed-order sum per row.
// Experts may be split over several buffers (parts): a dispatch serves the slots whose expert
// lies in its part and leaves the others alone.

//!include mxfp4
//!include topk
//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;
const ROWS: u32 = 8u;             // gate/up rows per workgroup (even: whole pairs)
const LANES: u32 = WG / ROWS;     // invocations per row
const MAX_HIDDEN: u32 = 4096u;

struct Params {
    hidden: u32,
    inter: u32,
    n_experts: u32,
    k: u32,
    e0: u32,          // first expert in this part
    n_part: u32,      // experts in this part
    eps: f32,
    limit: f32,       // swiglu_limit
}

@group(0) @binding(0) var<uniform> params: Params;
// binding 1: router_logits (topk.wgsl)
@group(0) @binding(2) var<storage, read> x: array<f32>;              // [hidden] residual stream
@group(0) @binding(3) var<storage, read> gain: array<f32>;           // [hidden] MLP norm gain
@group(0) @binding(4) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, 2 inter, hidden/32]
@group(0) @binding(5) var<storage, read> scales: array<u32>;         // [n_part, 2 inter, hidden/32] u8
@group(0) @binding(6) var<storage, read> bias: array<f32>;           // [n_part, 2 inter]
@group(0) @binding(7) var<storage, read_write> act: array<f32>;      // [k, inter]

var<workgroup> xs: array<vec2<f32>, MAX_HIDDEN / 2u>;
var<workgroup> row_parts: array<f32, WG>;

@compute @workgroup_size(WG)
fn moe_gate_up_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let lid = ids.lid;
    let slot = wg_id.y;
    let row0 = wg_id.x * ROWS;
    if lid == 0u {
        topk_select(0u, params.n_experts, params.k);
    }
    mxfp4_init_pairs(lid, WG);
    var ss = 0.0;
    for (var i = lid; i < params.hidden / 2u; i += WG) {
        let v = vec2<f32>(x[2u * i], x[2u * i + 1u]);
        ss += dot(v, v);
        xs[i] = v * vec2<f32>(gain[2u * i], gain[2u * i + 1u]);
    }
    let inv_rms = inverseSqrt(workgroup_sum(ss, ids) / f32(params.hidden) + params.eps);
    let e = workgroupUniformLoad(&topk_ids[slot]);
    if e < params.e0 || e >= params.e0 + params.n_part || row0 >= 2u * params.inter {
        return;
    }
    let local_e = e - params.e0;

    let r = lid / LANES;
    let lane = lid % LANES;
    let row = row0 + r;
    let n_blocks = params.hidden / 32u;
    var acc = 0.0;
    let wrow = (local_e * 2u * params.inter + row) * n_blocks;
    for (var b = lane; b < n_blocks; b += LANES) {
        let q = blocks[wrow + b];
        let sidx = wrow + b;
        let s = mxfp4_byte(scales[sidx >> 2u], sidx);
        var part = 0.0;
        for (var w = 0u; w < 4u; w++) {
            for (var j = 0u; j < 4u; j++) {
                let v = mxfp4_pairs[(q[w] >> (8u * j)) & 0xffu];
                part += dot(v, xs[16u * b + 4u * w + j]);
            }
        }
        acc += mxfp4_scale(part, s);
    }
    row_parts[lid] = acc;
    workgroupBarrier();
    if lid < ROWS / 2u {
        var h = vec2<f32>(0.0);
        for (var l = 0u; l < LANES; l++) {
            h.x += row_parts[(2u * lid) * LANES + l];
            h.y += row_parts[(2u * lid + 1u) * LANES + l];
        }
        let brow = local_e * 2u * params.inter + row0 + 2u * lid;
        h = h * inv_rms + vec2<f32>(bias[brow], bias[brow + 1u]);
        let g = min(h.x, params.limit);
        let u = clamp(h.y, -params.limit, params.limit);
        let a = g / (1.0 + exp(-1.702 * g)) * (u + 1.0);
        act[slot * params.inter + row0 / 2u + lid] = a;
    }
}
