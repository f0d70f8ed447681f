// moe_combine_prefill_f32: x[t] += sum over j = 0..k-1, in that order, of w[t, j] y[entry
// (t, j)], the residual add of the MoE block for a prefill step. Fixed order: deterministic.
// One invocation per (token, hidden element).

//!include grid

struct Params {
    n_tokens: u32,
    hidden: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;            // [n_entries (sorted), hidden]
@group(0) @binding(2) var<storage, read> weights: array<f32>;      // [n_tokens * k]
@group(0) @binding(3) var<storage, read> slot_pos: array<u32>;     // [n_tokens * k]
@group(0) @binding(4) var<storage, read_write> x: array<f32>;      // [n_tokens, hidden]

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn moe_combine_prefill_f32(grid: GridIds) {
    let i = grid_index(grid, WG);
    if i >= params.n_tokens * params.hidden {
        return;
    }
    let t = i / params.hidden;
    let c = i % params.hidden;
    var sum = 0.0;
    for (var j = 0u; j < params.k; j++) {
        let entry = t * params.k + j;
        sum += weights[entry] * y[slot_pos[entry] * params.hidden + c];
    }
    x[i] += sum;
}
