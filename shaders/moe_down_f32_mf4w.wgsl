// moe_down_f32_mf4w: for one token, the MXFP4 down projections of the selected experts, each
// with its expert bias and times its routing weight (the bias sits inside it, as gpt-oss
// does), added to the residual stream: x[r] += sum over slots j in order of w_j (W2_j act_j +
// b2_j)[r]. A workgroup owns ROWS_PER_WG rows for every slot: its groups take units of (slot,
// R rows), each lane one 32-block per step, loads before arithmetic, mxfp4_decode (as in
// moe_gate_up_f32_mf4w); the units' results meet in workgroup memory and one invocation per
// row adds the slots in order. act is staged in workgroup memory unless X_GLOBAL. Experts may
// be split over parts: a part's dispatch adds only the slots whose expert it holds (dispatches
// are ordered, so the parts' read-modify-writes of x follow one another).

//!include mxfp4
//!include reduce
//!include moe_decode

const REDUCE_SIZE: u32 = WG;

// k * ROWS_PER_WG: the units' results.
override Y_LEN: u32 = 128u;

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
@group(0) @binding(6) var<storage, read_write> x: array<f32>;        // [hidden]

var<workgroup> ys: array<f32, Y_LEN>;                                 // [k, ROWS_PER_WG]

fn in_part(e: u32) -> bool {
    return e >= params.e0 && e < params.e0 + params.n_part;
}

fn moe_x(i: u32) -> vec4<f32> {
    if X_GLOBAL {
        return act[i];
    }
    return xs[moe_xs_index(i)];
}

@compute @workgroup_size(WG)
fn moe_down_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let row0 = wg_id.x * ROWS_PER_WG;
    if row0 >= params.hidden {
        return;
    }
    mxfp4_init_lut(ids.lid);
    let inter4 = params.inter / 4u;
    if !X_GLOBAL {
        for (var i = ids.lid; i < params.k * inter4; i += WG) {
            xs[moe_xs_index(i)] = act[i];
        }
    }
    workgroupBarrier();

    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let nb = params.inter / 32u;
    let last_row = min(params.hidden, row0 + ROWS_PER_WG) - 1u;
    let units_per_slot = ROWS_PER_WG / R;
    let units = params.k * units_per_slot;
    // Every group runs every pass (group_sum may hold barriers); a unit outside this part or
    // past the last one loads nothing and writes nothing.
    let passes = (units + ng - 1u) / ng;
    for (var step_i = 0u; step_i < passes; step_i++) {
        let u = step_i * ng + g;
        let slot = min(u / units_per_slot, params.k - 1u);
        let e = route[slot];
        let mine = u < units && in_part(e);
        let weight = bitcast<f32>(route[params.k + slot]);
        let rbase = row0 + (u % units_per_slot) * R;
        let expert_row0 = select(0u, e - params.e0, mine) * params.hidden;
        var rows: array<u32, R_MAX>;
        for (var r = 0u; r < R; r++) {
            rows[r] = expert_row0 + min(rbase + r, last_row);
        }
        // A unit outside this part or past the last one has no blocks to read.
        let acc = moe_rows_dot(rows, select(0u, nb, mine), lane, lanes, slot * inter4);
        for (var r = 0u; r < R; r++) {
            let total = group_sum(acc[r], ids);
            let row = rbase + r;
            if lane == 0u && mine && row <= last_row {
                ys[slot * ROWS_PER_WG + row - row0] = weight * (total + bias[expert_row0 + row]);
            }
        }
    }
    workgroupBarrier();

    for (var i = ids.lid; i < ROWS_PER_WG; i += WG) {
        let row = row0 + i;
        if row <= last_row {
            var sum = 0.0;
            var any = false;
            for (var j = 0u; j < params.k; j++) {
                if in_part(route[j]) {
                    sum += ys[j * ROWS_PER_WG + i];
                    any = true;
                }
            }
            if any {
                x[row] += sum;
            }
        }
    }
}
