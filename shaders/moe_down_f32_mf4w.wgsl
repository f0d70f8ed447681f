// moe_down_f32_mf4w: x[r] += sum over the selected experts j, in slot order, of
// w_j (W2_j act_j + b2_j)[r] for one token: the down projection, the routing weight (the expert
// bias inside it, as gpt-oss does) and the residual add in one pass. A workgroup owns
// ROWS_PER_WG rows for every slot whose expert is in this part: act_j goes to workgroup
// memory, then groups stream the rows' MXFP4 blocks as moe_gate_up_f32_mf4w does.

//!include mxfp4
//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;
const R: u32 = 2u;
const MAX_INTER: u32 = 4096u;

override ROWS_PER_WG: u32 = 16u;

struct Params {
    hidden: u32,
    inter: u32,
    k: u32,
    e0: u32,
    n_part: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> route: array<u32>;          // [2 k]: ids, weights
@group(0) @binding(2) var<storage, read> act: array<vec4<f32>>;      // [k, inter / 4]
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, hidden, inter/32]
@group(0) @binding(4) var<storage, read> scales: array<u32>;         // [n_part, hidden, inter/32] u8
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, hidden]
@group(0) @binding(6) var<storage, read_write> x: array<f32>;        // [hidden] residual stream

var<workgroup> xs: array<vec4<f32>, MAX_INTER / 4u>;
var<workgroup> totals: array<f32, ROWS_PER_WG>;

@compute @workgroup_size(WG)
fn moe_down_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let row0 = wg_id.x * ROWS_PER_WG;
    if row0 >= params.hidden {
        return;
    }
    mxfp4_init_pairs(ids.lid, WG);
    for (var i = ids.lid; i < ROWS_PER_WG; i += WG) {
        totals[i] = 0.0;
    }
    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let nb = params.inter / 32u;
    let passes = (ROWS_PER_WG + ng * R - 1u) / (ng * R);
    for (var slot = 0u; slot < params.k; slot++) {
        let e = route[slot];
        if e < params.e0 || e >= params.e0 + params.n_part {
            continue;
        }
        let weight = bitcast<f32>(route[params.k + slot]);
        let expert_row0 = (e - params.e0) * params.hidden;
        workgroupBarrier();
        for (var i = ids.lid; i < params.inter / 4u; i += WG) {
            xs[i] = act[slot * params.inter / 4u + i];
        }
        workgroupBarrier();
        for (var step_i = 0u; step_i < passes; step_i++) {
            let rbase = row0 + (step_i * ng + g) * R;
            var acc = array<f32, R>();
            let last_row = min(params.hidden, row0 + ROWS_PER_WG) - 1u;
            for (var b = lane; b < nb; b += lanes) {
                var q: array<vec4<u32>, R>;
                var s: array<u32, R>;
                for (var r = 0u; r < R; r++) {
                    let blk = (expert_row0 + min(rbase + r, last_row)) * nb + b;
                    q[r] = blocks[blk];
                    s[r] = mxfp4_byte(scales[blk >> 2u], blk);
                }
                var xv: array<vec4<f32>, 8>;
                for (var j = 0u; j < 8u; j++) {
                    xv[j] = xs[8u * b + j];
                }
                for (var r = 0u; r < R; r++) {
                    var part = 0.0;
                    for (var w = 0u; w < 4u; w++) {
                        let word = q[r][w];
                        part += dot(mxfp4_pairs[word & 0xffu], xv[2u * w].xy);
                        part += dot(mxfp4_pairs[(word >> 8u) & 0xffu], xv[2u * w].zw);
                        part += dot(mxfp4_pairs[(word >> 16u) & 0xffu], xv[2u * w + 1u].xy);
                        part += dot(mxfp4_pairs[word >> 24u], xv[2u * w + 1u].zw);
                    }
                    acc[r] += mxfp4_scale(part, s[r]);
                }
            }
            for (var r = 0u; r < R; r++) {
                let y = group_sum(acc[r], ids);
                let row = rbase + r;
                if lane == 0u && row < params.hidden && row < row0 + ROWS_PER_WG {
                    totals[row - row0] += weight * (y + bias[expert_row0 + row]);
                }
            }
        }
    }
    workgroupBarrier();
    for (var i = ids.lid; i < ROWS_PER_WG; i += WG) {
        if row0 + i < params.hidden {
            x[row0 + i] += totals[i];
        }
    }
}
