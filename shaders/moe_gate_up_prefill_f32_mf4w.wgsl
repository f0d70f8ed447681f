// moe_gate_up_prefill_f32_mf4w: grouped MXFP4 gate_up matmul with clamped SwiGLU for a prefill
// step. Workgroup = (tile of TN gate_up rows, one row tile of moe_route_prefill's list): the
// tile's TM sorted entries all use one expert, so its weights are read once for them all.
// The K loop is moe_prefill_tile's (one 32-block per step, each row's scale once per block);
// the activations are gathered by token. Rows interleave gate and up, so an invocation's 4 adjacent rows give 2 activations.
// Experts may be split over parts; a dispatch serves the tiles whose expert is in its part.

//!include moe_prefill_tile

struct Params {
    hidden: u32,
    inter: u32,
    k: u32,           // experts per token
    e0: u32,
    n_part: u32,
    limit: f32,
    n_experts: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> xn: array<f32>;             // [n_tokens, hidden] normalised
@group(0) @binding(2) var<storage, read> offsets: array<u32>;        // [n_experts + 1]
@group(0) @binding(3) var<storage, read> sorted: array<u32>;         // [n_tokens * k]
@group(0) @binding(4) var<storage, read> tiles: array<vec2<u32>>;    // [max tiles]
@group(0) @binding(5) var<storage, read> tile_count: array<u32>;     // [1]
@group(0) @binding(6) var<storage, read> blocks: array<u32>;         // [n_part, 2 inter, hidden/32, 16] u8
@group(0) @binding(7) var<storage, read> scales: array<u32>;         // [n_part, 2 inter, hidden/32] u8
@group(0) @binding(8) var<storage, read> bias: array<f32>;           // [n_part, 2 inter]
@group(0) @binding(9) var<storage, read_write> act: array<f32>;      // [n_tokens * k (sorted), inter]

var<workgroup> tokens: array<u32, TM>;

fn moe_tile_x(start: u32, m: u32, k: u32) -> f32 {
    return xn[tokens[m] * params.hidden + k];
}

@compute @workgroup_size(WG)
fn moe_gate_up_prefill_f32_mf4w(ids: MoeTileIds) {
    let tile = moe_tile(ids, params.e0, params.n_part);
    if tile.n_rows == 0u {
        return;
    }
    let n_total = 2u * params.inter;
    let nb = params.hidden / 32u;
    mxfp4_init_pairs(ids.lid, WG);
    if ids.lid < TM {
        var t = 0u;
        if ids.lid < tile.n_rows {
            t = sorted[tile.start + ids.lid] / params.k;
        }
        tokens[ids.lid] = t;
    }
    workgroupBarrier();
    let acc = moe_tile_matmul(ids.lid, tile.start, tile.n_rows, tile.local_e, tile.n0, n_total, nb);

    for (var i = 0u; i < 4u; i++) {
        let m = tile.out_m + i;
        if m >= tile.n_rows {
            break;
        }
        for (var p = 0u; p < 2u; p++) {
            let n = tile.out_n + 2u * p;
            if n < n_total {
                let bi = tile.local_e * n_total + n;
                let g = min(acc[i][2u * p] + bias[bi], params.limit);
                let u = clamp(acc[i][2u * p + 1u] + bias[bi + 1u], -params.limit, params.limit);
                act[(tile.start + m) * params.inter + n / 2u] = g / (1.0 + exp(-1.702 * g)) * (u + 1.0);
            }
        }
    }
}
