// moe_gate_up_f32_mf4w: for one token and each selected expert (grid y = slot), the MXFP4
// gate_up projection of the normalised activations xn, then clamped SwiGLU:
//   act[slot, i] = g sigmoid(1.702 g) (u + 1), g = min(h[2i], limit), u = clamp(h[2i+1], +-limit)
// (rows interleave gate and up). The router kernel has already chosen the experts (route) and
// normalised x (xn), so a workgroup only streams weights: ROWS_PER_WG rows of the slot's
// expert, as moe_decode.wgsl lays out (each invocation one column of blocks, xn's block in
// registers, R rows' loads in flight, partials summed after one barrier).
// Experts may be split over parts: a dispatch serves the slots whose expert is in its part.

//!include mxfp4
//!include reduce
//!include moe_decode

struct Params {
    hidden: u32,
    inter: u32,
    k: u32,
    e0: u32,          // first expert in this part
    n_part: u32,      // experts in this part
    limit: f32,       // swiglu_limit
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// Bindings 1 (route) and 5 (bias) are moe_decode.wgsl's.
@group(0) @binding(2) var<storage, read> xn: array<vec4<f32>>;       // [hidden / 4]
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, 2 inter, hidden/32]
@group(0) @binding(4) var<storage, read> scales: array<u32>;         // [n_part, 2 inter, hidden/32] u8
@group(0) @binding(6) var<storage, read_write> act: array<f32>;      // [k, inter]

fn moe_x(i: u32) -> vec4<f32> {
    return xn[i];
}

@compute @workgroup_size(WG)
fn moe_gate_up_f32_mf4w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let slot = wg_id.y;
    let e = route[slot];
    let row0 = wg_id.x * ROWS_PER_WG;
    let n_rows = 2u * params.inter;
    if e < params.e0 || e >= params.e0 + params.n_part || row0 >= n_rows {
        return;
    }
    if !DECODE_BITS {
        mxfp4_init_lut(ids.lid);
        workgroupBarrier();
    }
    let expert_row0 = (e - params.e0) * n_rows;
    let rows = min(ROWS_PER_WG, n_rows - row0);
    moe_rows_partial(expert_row0 + row0, rows, params.hidden / 32u, ids.lid, 0u, 0u);
    workgroupBarrier();

    // Each group takes gate/up pairs, all groups the same number of rounds.
    let g = group_id(ids);
    let ng = n_groups(ids);
    for (var p0 = 0u; p0 < ROWS_PER_WG / 2u; p0 += ng) {
        let p = min(p0 + g, rows / 2u - 1u);
        let hg = moe_row_sum(2u * p, ids);
        let hu = moe_row_sum(2u * p + 1u, ids);
        if group_lane(ids) == 0u && p0 + g < rows / 2u {
            let bi = expert_row0 + row0 + 2u * p;
            let gv = min(hg + bias[bi], params.limit);
            let uv = clamp(hu + bias[bi + 1u], -params.limit, params.limit);
            act[slot * params.inter + (row0 / 2u) + p] = gv / (1.0 + exp(-1.702 * gv)) * (uv + 1.0);
        }
    }
}
