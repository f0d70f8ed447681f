// row_exp_mf4w: per row of an MXFP4 expert matrix (one stored part: every expert's rows, one
// after another), the largest E8M0 scale byte of the row's blocks, which the
// cooperative-matrix expert tiles (moe_prefill_coop) take as the row's scale: each weight is
// stored there as E2M1 x 2^(block scale - row scale). The weights do not change, so this runs
// once when a model's prefill is set up (model::prefill) rather than at the start of every
// tile. One invocation per 4 rows (one output word of 4 bytes).

//!include mxfp4

const WG: u32 = 64u;

struct Params {
    rows: u32,        // rows of the part (experts x rows per expert)
    nb: u32,          // blocks per row (K / 32)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> scales: array<u32>;           // [rows, nb] u8
@group(0) @binding(2) var<storage, read_write> row_exp: array<u32>;    // [rows] u8

@compute @workgroup_size(WG)
fn row_exp_mf4w(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = gid.x + gid.y * nwg.x * WG;
    if w * 4u >= params.rows {
        return;
    }
    var word = 0u;
    for (var r = 0u; r < 4u; r++) {
        let row = w * 4u + r;
        if row < params.rows {
            var m = 0u;
            for (var i = row * params.nb; i < (row + 1u) * params.nb; i++) {
                m = max(m, mxfp4_byte(scales[i >> 2u], i));
            }
            word |= m << (8u * r);
        }
    }
    row_exp[w] = word;
}
