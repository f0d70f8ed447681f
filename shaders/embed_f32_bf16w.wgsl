// embed_f32_bf16w: out[t] = table[ids[t]] as f32, for the tokens whose id lies in this part of
// the (possibly row-split) bf16 embedding table. One invocation per (token, pair of elements).

//!include grid
//!include bf16

struct Params {
    n_tokens: u32,
    h2: u32,        // hidden / 2: u32 words per row
    row0: u32,      // first vocabulary row held by this part
    rows: u32,      // rows held by this part
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;        // [rows, hidden/2] bf16 pairs
@group(0) @binding(2) var<storage, read> ids: array<u32>;          // [n_tokens]
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;  // [n_tokens, hidden/2]

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn embed_f32_bf16w(grid: GridIds) {
    let i = grid_index(grid, WG);
    if i >= params.n_tokens * params.h2 {
        return;
    }
    let t = i / params.h2;
    let j = i % params.h2;
    let id = ids[t];
    if id < params.row0 || id >= params.row0 + params.rows {
        return;
    }
    out[i] = bf16_pair(table[(id - params.row0) * params.h2 + j]);
}
