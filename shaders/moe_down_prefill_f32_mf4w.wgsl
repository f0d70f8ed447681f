// moe_down_prefill_f32_mf4w: grouped MXFP4 down matmul for a prefill step: for every sorted
// entry of a row tile (one expert), y = W2 act + b2 (unweighted; moe_combine_prefill_f32
// applies the routing weights in a fixed order). The K loop is moe_prefill_tile's, as in
// moe_gate_up_prefill_f32_mf4w; the activations are read in sorted order.

//!include moe_prefill_tile

struct Params {
    hidden: u32,
    inter: u32,
    e0: u32,
    n_part: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> act: array<f32>;            // [n_entries (sorted), inter]
@group(0) @binding(2) var<storage, read> offsets: array<u32>;        // [n_experts + 1]
@group(0) @binding(3) var<storage, read> tiles: array<vec2<u32>>;    // [max tiles]
@group(0) @binding(4) var<storage, read> tile_count: array<u32>;     // [1]
@group(0) @binding(5) var<storage, read> blocks: array<u32>;         // [n_part, hidden, inter/32, 16] u8
@group(0) @binding(6) var<storage, read> scales: array<u32>;         // [n_part, hidden, inter/32] u8
@group(0) @binding(7) var<storage, read> bias: array<f32>;           // [n_part, hidden]
@group(0) @binding(8) var<storage, read_write> y: array<f32>;        // [n_entries (sorted), hidden]

fn moe_tile_x(start: u32, m: u32, k: u32) -> f32 {
    return act[(start + m) * params.inter + k];
}

@compute @workgroup_size(WG)
fn moe_down_prefill_f32_mf4w(ids: MoeTileIds) {
    let tile = moe_tile(ids, params.e0, params.n_part);
    if tile.n_rows == 0u {
        return;
    }
    let nb = params.inter / 32u;
    mxfp4_init_pairs(ids.lid, WG);
    workgroupBarrier();
    let acc = moe_tile_matmul(ids.lid, tile.start, tile.n_rows, tile.local_e, tile.n0, params.hidden, nb);

    for (var i = 0u; i < 4u; i++) {
        let m = tile.out_m + i;
        if m >= tile.n_rows {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = tile.out_n + j;
            if n < params.hidden {
                y[(tile.start + m) * params.hidden + n] = acc[i][j] + bias[tile.local_e * params.hidden + n];
            }
        }
    }
}
