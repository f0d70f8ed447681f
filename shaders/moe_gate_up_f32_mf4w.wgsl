// moe_gate_up_f32_mf4w: for one token and each selected expert (grid y = slot), the MXFP4
// gate_up projection of the normalised activations xn, then clamped SwiGLU:
//   act[slot, i] = g sigmoid(1.702 g) (u + 1), g = min(h[2i], limit), u = clamp(h[2i+1], +-limit)
// (rows interleave gate and up). The router kernels have already chosen the experts (route)
// and normalised x (xn), so a workgroup only streams weights: xn sits in workgroup memory, a
// group (subgroup) takes R rows at a time, each lane one 32-block of them per step: a 16-byte
// load per row issued before any arithmetic, E2M1 decoded by mxfp4_decode (into f16 bits, or
// through the nibble table on the portable path), each block sum scaled once by its E8M0
// scale (overflow-safe).
// Experts may be split over parts: a dispatch serves the slots whose expert is in its part.

//!include mxfp4
//!include reduce
//!include moe_decode

const REDUCE_SIZE: u32 = WG;

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
    if X_GLOBAL {
        return xn[i];
    }
    return xs[moe_xs_index(i)];
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
    mxfp4_init_lut(ids.lid);
    if !X_GLOBAL {
        for (var i = ids.lid; i < params.hidden / 4u; i += WG) {
            xs[moe_xs_index(i)] = xn[i];
        }
    }
    workgroupBarrier();

    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let nb = params.hidden / 32u;
    let expert_row0 = (e - params.e0) * n_rows;
    // Groups may cover more rows than the workgroup owns (ROWS_PER_WG below groups x R): those
    // load the last row again and are not written.
    let last_row = min(n_rows, row0 + ROWS_PER_WG) - 1u;
    let passes = (ROWS_PER_WG + ng * R - 1u) / (ng * R);
    for (var step_i = 0u; step_i < passes; step_i++) {
        let rbase = row0 + (step_i * ng + g) * R;
        var rows: array<u32, R_MAX>;
        for (var r = 0u; r < R; r++) {
            rows[r] = expert_row0 + min(rbase + r, last_row);
        }
        let acc = moe_rows_dot(rows, nb, lane, lanes, 0u);
        for (var p = 0u; p < R / 2u; p++) {
            let hg = group_sum(acc[2u * p], ids);
            let hu = group_sum(acc[2u * p + 1u], ids);
            let row = rbase + 2u * p;
            if lane == 0u && row < last_row {
                let bi = expert_row0 + row;
                let gv = min(hg + bias[bi], params.limit);
                let uv = clamp(hu + bias[bi + 1u], -params.limit, params.limit);
                act[slot * params.inter + row / 2u] = gv / (1.0 + exp(-1.702 * gv)) * (uv + 1.0);
            }
        }
    }
}
