// moe_down_f32_mf4w: for one token, the MXFP4 down projections of the selected experts, each
// with its expert bias and times its routing weight (the bias sits inside it, as gpt-oss
// does), added to the residual stream: x[r] += sum over slots j in order of w_j (W2_j act_j +
// b2_j)[r]. A workgroup owns ROWS_PER_WG rows for every slot, streamed slot by slot as
// moe_decode.wgsl lays out (each invocation one column of blocks, act_j's block in
// registers); after one barrier the groups sum each row's partials and add the slots in
// order. Experts may be split over parts: a part's dispatch adds only the slots whose expert
// it holds (dispatches are ordered, so the parts' read-modify-writes of x follow one another).

//!include mxfp4
//!include reduce
//!include moe_decode

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

fn in_part(e: u32) -> bool {
    return e >= params.e0 && e < params.e0 + params.n_part;
}

fn moe_x(i: u32) -> vec4<f32> {
    return act[i];
}

@compute @workgroup_size(WG)
fn moe_down_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let row0 = wg_id.x * ROWS_PER_WG;
    if row0 >= params.hidden {
        return;
    }
    if !DECODE_BITS {
        mxfp4_init_lut(ids.lid);
        workgroupBarrier();
    }
    let rows = min(ROWS_PER_WG, params.hidden - row0);
    let nb = params.inter / 32u;
    for (var j = 0u; j < params.k; j++) {
        let e = route[j];
        if in_part(e) {
            let first = (e - params.e0) * params.hidden + row0;
            moe_rows_partial(first, rows, nb, ids.lid, j * params.inter / 4u, j * ROWS_PER_WG);
        }
    }
    workgroupBarrier();

    let g = group_id(ids);
    let ng = n_groups(ids);
    for (var r0 = 0u; r0 < ROWS_PER_WG; r0 += ng) {
        let r = min(r0 + g, rows - 1u);
        var sum = 0.0;
        var any = false;
        for (var j = 0u; j < params.k; j++) {
            let e = route[j];
            if in_part(e) {
                let weight = bitcast<f32>(route[params.k + j]);
                let b = bias[(e - params.e0) * params.hidden + row0 + r];
                sum += weight * (moe_row_sum(j * ROWS_PER_WG + r, ids) + b);
                any = true;
            }
        }
        if group_lane(ids) == 0u && any && r0 + g < rows {
            x[row0 + r] += sum;
        }
    }
}
