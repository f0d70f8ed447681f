// moe_down_f16_mf4w: moe_down_f32_mf4w with its multiply-adds on the matrix units
// (moe_decode_coop): for one token, 16 rows of the residual per workgroup and every slot:
//   x[r] += sum over slots j in order of w_j (W2_j act_j + b2_j)[r].
// A unit is (slot, one of SPLIT ranges of K); the workgroup's N_SG subgroups take the k x
// SPLIT units N_SG at a time, their partial sums meet in workgroup memory, and one invocation
// per row adds the slots in order. Experts may be split over parts: a part's dispatch adds only
// the slots whose expert it holds (dispatches are ordered, so the parts' read-modify-writes of
// x follow one another).

//!include moe_decode_coop

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
@group(0) @binding(6) var<storage, read_write> x: array<f32>;        // [hidden]

// K ranges per slot, and k x SPLIT x 16: every unit's partial sums.
override SPLIT: u32 = 3u;
override PART_TOTAL: u32 = 192u;
var<workgroup> partial: array<f32, PART_TOTAL>;

fn coop_x(i: u32) -> vec4<f32> {
    return act[i];
}

fn in_part(e: u32) -> bool {
    return e >= params.e0 && e < params.e0 + params.n_part;
}

@compute @workgroup_size(WG)
fn moe_down_f16_mf4w(ids: CoopIds) {
    let r0 = ids.wg_id.x * COOP_ROWS;
    if r0 >= params.hidden {
        return;
    }
    let nb = params.inter / 32u;
    let units = params.k * SPLIT;
    // Every subgroup runs every round (coop_rows holds barriers); a unit past the last one or
    // outside this part computes nothing.
    for (var q = 0u; q < (units + N_SG - 1u) / N_SG; q++) {
        let u = q * N_SG + ids.sg_id;
        let slot = min(u / SPLIT, params.k - 1u);
        let e = route[slot];
        let live = u < units && in_part(e);
        let row0 = select(0u, e - params.e0, live) * params.hidden + r0;
        let v = coop_rows(ids, live, row0, nb, (u % SPLIT) * STEPS, slot * params.inter / 4u);
        if ids.sg_lane < COOP_ROWS && u < units {
            partial[u * COOP_ROWS + ids.sg_lane] = v;
        }
    }
    workgroupBarrier();

    if ids.lid < COOP_ROWS {
        let row = r0 + ids.lid;
        var sum = 0.0;
        var any = false;
        for (var j = 0u; j < params.k; j++) {
            let e = route[j];
            if in_part(e) {
                var y = 0.0;
                for (var p = 0u; p < SPLIT; p++) {
                    y += partial[(j * SPLIT + p) * COOP_ROWS + ids.lid];
                }
                sum += bitcast<f32>(route[params.k + j]) * (y + bias[(e - params.e0) * params.hidden + row]);
                any = true;
            }
        }
        if any {
            x[row] += sum;
        }
    }
}
