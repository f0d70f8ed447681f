// moe_gate_up_f16_mf4w: moe_gate_up_f32_mf4w with its multiply-adds on the matrix units
// (moe_decode_coop): for one token and each selected expert (grid y = slot), 16 gate_up rows
// per workgroup (grid x), K split into N_SG ranges, one per subgroup; the partial sums meet
// in workgroup memory (in subgroup order), then bias and clamped SwiGLU as there:
//   act[slot, i] = g sigmoid(1.702 g) (u + 1), g = min(h[2i], limit), u = clamp(h[2i+1], +-limit).
// Experts may be split over parts: a dispatch serves the slots whose expert is in its part.

//!include moe_decode_coop

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
@group(0) @binding(1) var<storage, read> route: array<u32>;          // [2 k]: ids, weights
@group(0) @binding(2) var<storage, read> xn: array<vec4<f32>>;       // [hidden / 4]
@group(0) @binding(3) var<storage, read> blocks: array<vec4<u32>>;   // [n_part, 2 inter, hidden/32]
@group(0) @binding(4) var<storage, read> scales: array<u32>;         // [n_part, 2 inter, hidden/32] u8
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, 2 inter]
@group(0) @binding(6) var<storage, read_write> act: array<f32>;      // [k, inter]

// N_SG x 16: each subgroup's partial sums.
override PART_TOTAL: u32 = 64u;
var<workgroup> partial: array<f32, PART_TOTAL>;

fn coop_x(i: u32) -> vec4<f32> {
    return xn[i];
}

@compute @workgroup_size(WG)
fn moe_gate_up_f16_mf4w(ids: CoopIds) {
    let slot = ids.wg_id.y;
    let e = route[slot];
    let n_rows = 2u * params.inter;
    let r0 = ids.wg_id.x * COOP_ROWS;
    if e < params.e0 || e >= params.e0 + params.n_part || r0 >= n_rows {
        return;
    }
    let row0 = (e - params.e0) * n_rows + r0;
    let v = coop_rows(ids, true, row0, params.hidden / 32u, ids.sg_id * STEPS, 0u);
    if ids.sg_lane < COOP_ROWS {
        partial[ids.sg_id * COOP_ROWS + ids.sg_lane] = v;
    }
    workgroupBarrier();
    if ids.lid < COOP_ROWS / 2u {
        // Rows interleave gate and up: 2p is a gate row, 2p + 1 its up row.
        let p = ids.lid;
        var hg = 0.0;
        var hu = 0.0;
        for (var s = 0u; s < N_SG; s++) {
            hg += partial[s * COOP_ROWS + 2u * p];
            hu += partial[s * COOP_ROWS + 2u * p + 1u];
        }
        let bi = row0 + 2u * p;
        let gv = min(hg + bias[bi], params.limit);
        let uv = clamp(hu + bias[bi + 1u], -params.limit, params.limit);
        act[slot * params.inter + (r0 + 2u * p) / 2u] = gv / (1.0 + exp(-1.702 * gv)) * (uv + 1.0);
    }
}
