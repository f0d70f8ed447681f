// moe_down_f32_mf4w: for one token and each selected expert j (grid y = slot), the MXFP4 down
// projection of act_j with the expert bias, times the routing weight (the bias sits inside it,
// as gpt-oss does): y[j, r] = w_j (W2_j act_j + b2_j)[r]. moe_combine_f32 then adds the slots
// to the residual stream in slot order. Streaming as in moe_gate_up_f32_mf4w: act_j in
// workgroup memory, groups of lanes over R rows, loads before arithmetic, a nibble table.

//!include mxfp4
//!include reduce
//!include moe_decode

const REDUCE_SIZE: u32 = WG;

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
// Bindings 1 (route) and 5 (bias) are moe_decode.wgsl's.
@group(0) @binding(2) var<storage, read> act: array<vec4<f32>>;      // [k, inter / 4]
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, hidden, inter/32]
@group(0) @binding(4) var<storage, read> scales: array<u32>;         // [n_part, hidden, inter/32] u8
@group(0) @binding(6) var<storage, read_write> y: array<f32>;        // [k, hidden]

@compute @workgroup_size(WG)
fn moe_down_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let slot = wg_id.y;
    let e = route[slot];
    let row0 = wg_id.x * ROWS_PER_WG;
    if e < params.e0 || e >= params.e0 + params.n_part || row0 >= params.hidden {
        return;
    }
    let weight = bitcast<f32>(route[params.k + slot]);
    mxfp4_init_lut(ids.lid);
    if !X_GLOBAL {
        for (var i = ids.lid; i < params.inter / 4u; i += WG) {
            xs[i] = act[slot * params.inter / 4u + i];
        }
    }
    workgroupBarrier();

    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let nb = params.inter / 32u;
    let expert_row0 = (e - params.e0) * params.hidden;
    let last_row = min(params.hidden, row0 + ROWS_PER_WG) - 1u;
    let passes = (ROWS_PER_WG + ng * R - 1u) / (ng * R);
    for (var step_i = 0u; step_i < passes; step_i++) {
        let rbase = row0 + (step_i * ng + g) * R;
        var acc = array<f32, R>();
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
                if X_GLOBAL {
                    xv[j] = act[slot * params.inter / 4u + 8u * b + j];
                } else {
                    xv[j] = xs[8u * b + j];
                }
            }
            for (var r = 0u; r < R; r++) {
                acc[r] += mxfp4_scale(mxfp4_dot_block(q[r], xv), s[r]);
            }
        }
        for (var r = 0u; r < R; r++) {
            let total = group_sum(acc[r], ids);
            let row = rbase + r;
            if lane == 0u && row <= last_row {
                y[slot * params.hidden + row] = weight * (total + bias[expert_row0 + row]);
            }
        }
    }
}
