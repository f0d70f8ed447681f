// moe_gate_up_prefill_f16_mf4w: moe_gate_up_prefill_f32_mf4w on cooperative matrices (f16
// operands, f32 accumulation; moe_prefill_coop's tile): grouped MXFP4 gate_up and clamped
// SwiGLU over (tile of TN gate_up rows, row tile of moe_route_prefill's list). The
// activations are gathered by token from row_shift_f32's x16: divided by 2^shift[token], so
// that none exceeds f16's range, and split into two f16 parts; the result is multiplied back
// in f32.

//!include moe_prefill_coop

struct Params {
    hidden: u32,
    inter: u32,
    k: u32,           // experts per token
    e0: u32,
    n_part: u32,
    limit: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x16: array<vec4<f16>>;      // [n_tokens, hidden/4, 2] normalised
@group(0) @binding(2) var<storage, read> shift: array<u32>;          // [n_tokens]
@group(0) @binding(3) var<storage, read> offsets: array<u32>;        // [n_experts + 1]
@group(0) @binding(4) var<storage, read> sorted: array<u32>;         // [n_tokens * k]
@group(0) @binding(5) var<storage, read> tiles: array<vec2<u32>>;    // [max tiles]
@group(0) @binding(6) var<storage, read> tile_count: array<u32>;     // [1]
@group(0) @binding(7) var<storage, read> blocks: array<u32>;         // [n_part, 2 inter, hidden/32, 16] u8
@group(0) @binding(8) var<storage, read> scales: array<u32>;         // [n_part, 2 inter, hidden/32] u8
@group(0) @binding(9) var<storage, read> bias: array<f32>;           // [n_part, 2 inter]
@group(0) @binding(10) var<storage, read_write> act: array<f32>;     // [n_tokens * k (sorted), inter]
@group(0) @binding(11) var<storage, read> row_exps: array<u32>;      // [n_part, 2 inter] u8 (row_exp_mf4w)

var<workgroup> tokens: array<u32, TM>;
var<workgroup> token_shift: array<u32, TM>;

alias MoeX = CoopX4;

fn moe_coop_x4(start: u32, m: u32, k: u32) -> CoopX4 {
    let run = (tokens[m] * params.hidden + k) / 4u;
    return CoopX4(x16[2u * run], x16[2u * run + 1u]);
}

fn moe_coop_parts(v: CoopX4) -> CoopX4 {
    return v;
}

fn moe_coop_out(t: CoopTile, m: u32, n: u32, v: vec2<f32>) {
    // Rows interleave gate and up: n is a gate row, n + 1 its up row.
    let s = 127u + token_shift[m];
    let bi = t.local_e * t.n_total + t.n0 + n;
    let g = min(mxfp4_scale(v.x, s) + bias[bi], params.limit);
    let u = clamp(mxfp4_scale(v.y, s) + bias[bi + 1u], -params.limit, params.limit);
    act[(t.start + m) * params.inter + (t.n0 + n) / 2u] = g / (1.0 + exp(-1.702 * g)) * (u + 1.0);
}

@compute @workgroup_size(WG)
fn moe_gate_up_prefill_f16_mf4w(ids: CoopIds) {
    let t = coop_tile(ids, params.e0, params.n_part, 2u * params.inter);
    if t.n_rows == 0u {
        return;
    }
    coop_init_weights(ids.lid);
    if ids.lid < TM {
        var tok = 0u;
        if ids.lid < t.n_rows {
            tok = sorted[t.start + ids.lid] / params.k;
        }
        tokens[ids.lid] = tok;
        token_shift[ids.lid] = shift[tok];
    }
    workgroupBarrier();
    coop_tile_matmul(ids, t, params.hidden / 32u);
}
