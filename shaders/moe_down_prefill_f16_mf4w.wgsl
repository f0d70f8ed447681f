// moe_down_prefill_f16_mf4w: moe_down_prefill_f32_mf4w on cooperative matrices (f16
// operands, f32 accumulation; moe_prefill_coop's tile): for every sorted entry of a row tile
// (one expert), y = W2 act + b2 (unweighted; moe_combine_prefill_f32 applies the routing
// weights). The activations are clamped SwiGLU outputs, |act| <= limit (limit + 1), which
// the host checks is within f16's range before choosing this kernel.

//!include moe_prefill_coop

struct Params {
    hidden: u32,
    inter: u32,
    e0: u32,
    n_part: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> act: array<vec4<f32>>;      // [n_entries (sorted), inter]
@group(0) @binding(2) var<storage, read> offsets: array<u32>;        // [n_experts + 1]
@group(0) @binding(3) var<storage, read> tiles: array<vec2<u32>>;    // [max tiles]
@group(0) @binding(4) var<storage, read> tile_count: array<u32>;     // [1]
@group(0) @binding(5) var<storage, read> blocks: array<u32>;         // [n_part, hidden, inter/32, 16] u8
@group(0) @binding(6) var<storage, read> scales: array<u32>;         // [n_part, hidden, inter/32] u8
@group(0) @binding(7) var<storage, read> bias: array<f32>;           // [n_part, hidden]
@group(0) @binding(8) var<storage, read_write> y: array<f32>;        // [n_entries (sorted), hidden]
@group(0) @binding(9) var<storage, read> row_exps: array<u32>;       // [n_part, hidden] u8 (row_exp_mf4w)

// Loaded as f32 and split only when stored: a split at the load would wait for it before
// the step's products (BENCHMARKS.md, change 27: down 54 -> 90 ms a step).
alias MoeX = vec4<f32>;

fn moe_coop_x4(start: u32, m: u32, k: u32) -> vec4<f32> {
    return act[((start + m) * params.inter + k) / 4u];
}

fn moe_coop_parts(v: vec4<f32>) -> CoopX4 {
    return coop_split_x4(v);
}

fn moe_coop_out(t: CoopTile, m: u32, n: u32, v: vec2<f32>) {
    let o = (t.start + m) * params.hidden + t.n0 + n;
    let bi = t.local_e * params.hidden + t.n0 + n;
    y[o] = v.x + bias[bi];
    y[o + 1u] = v.y + bias[bi + 1u];
}

@compute @workgroup_size(WG)
fn moe_down_prefill_f16_mf4w(ids: CoopIds) {
    let t = coop_tile(ids, params.e0, params.n_part, params.hidden);
    if t.n_rows == 0u {
        return;
    }
    coop_init_weights(ids.lid);
    workgroupBarrier();
    coop_tile_matmul_indexed(ids, t, params.inter / 32u);
}
