// moe_down_f32_mf4w: x[r] += sum over selected experts j (in slot order) of
// w_j (W2_j act_j + b2_j)[r], for one token: the down projection, the routing weight (the
// expert bias inside it, as gpt-oss does) and the residual add in one pass. Each workgroup
// recomputes the top-k, then serves ROWS output rows for every slot whose expert lies in this
// part: act_j goes to workgroup memory, WG/ROWS invocations per row sum whole 32-blocks.

//!include mxfp4
//!include topk

const WG: u32 = 256u;
const ROWS: u32 = 8u;
const LANES: u32 = WG / ROWS;
const MAX_INTER: u32 = 4096u;

struct Params {
    hidden: u32,
    inter: u32,
    n_experts: u32,
    k: u32,
    e0: u32,
    n_part: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// binding 1: router_logits (topk.wgsl)
@group(0) @binding(2) var<storage, read> act: array<vec2<f32>>;      // [k, inter]
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, hidden, inter/32]
@group(0) @binding(4) var<storage, read> scales: array<u32>;         // [n_part, hidden, inter/32] u8
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, hidden]
@group(0) @binding(6) var<storage, read_write> x: array<f32>;        // [hidden] residual stream

var<workgroup> acts: array<vec2<f32>, MAX_INTER / 2u>;
var<workgroup> row_parts: array<f32, WG>;

@compute @workgroup_size(WG)
fn moe_down_f32_mf4w(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wg_id: vec3<u32>) {
    let row0 = wg_id.x * ROWS;
    if lid == 0u {
        topk_select(0u, params.n_experts, params.k);
    }
    mxfp4_init_pairs(lid, WG);
    workgroupBarrier();
    if row0 >= params.hidden {
        return;
    }
    let r = lid / LANES;
    let lane = lid % LANES;
    let row = row0 + r;
    let n_blocks = params.inter / 32u;
    var total = 0.0;
    for (var slot = 0u; slot < params.k; slot++) {
        let e = workgroupUniformLoad(&topk_ids[slot]);
        if e < params.e0 || e >= params.e0 + params.n_part {
            continue;
        }
        let local_e = e - params.e0;
        workgroupBarrier();
        for (var i = lid; i < params.inter / 2u; i += WG) {
            acts[i] = act[slot * params.inter / 2u + i];
        }
        workgroupBarrier();
        var acc = 0.0;
        let wrow = (local_e * params.hidden + row) * n_blocks;
        for (var b = lane; b < n_blocks; b += LANES) {
            let q = blocks[wrow + b];
            let sidx = wrow + b;
            let s = mxfp4_byte(scales[sidx >> 2u], sidx);
            var part = 0.0;
            for (var w = 0u; w < 4u; w++) {
                for (var j = 0u; j < 4u; j++) {
                    let v = mxfp4_pairs[(q[w] >> (8u * j)) & 0xffu];
                    part += dot(v, acts[16u * b + 4u * w + j]);
                }
            }
            acc += mxfp4_scale(part, s);
        }
        row_parts[lid] = acc;
        workgroupBarrier();
        if lid < ROWS && row0 + lid < params.hidden {
            var y = 0.0;
            for (var l = 0u; l < LANES; l++) {
                y += row_parts[lid * LANES + l];
            }
            y += bias[local_e * params.hidden + row0 + lid];
            total += topk_weights[slot] * y;
        }
    }
    if lid < ROWS && row0 + lid < params.hidden {
        x[row0 + lid] += total;
    }
}
