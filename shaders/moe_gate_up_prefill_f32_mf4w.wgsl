// moe_gate_up_prefill_f32_mf4w: grouped MXFP4 gate_up matmul with clamped SwiGLU for a prefill
// step. Workgroup = (tile of TN gate_up rows, one row tile of moe_route_prefill's list): the
// tile's TM sorted entries all use one expert, so its weights are read once for them all.
// Each K step is one 32-block: raw E2M1 values go to workgroup memory, every invocation sums
// its 4 x 4 outputs over the block and applies each row's scale once (overflow-safe). Rows
// interleave gate and up, so an invocation's 4 adjacent rows give 2 activations.
// Experts may be split over parts; a dispatch serves the tiles whose expert is in its part.

//!include mxfp4

const TM: u32 = 64u;
const TN: u32 = 64u;
const WG: u32 = 256u;

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

var<workgroup> xs: array<vec4<f32>, 32u * TM / 4u>;   // [32][TM]
var<workgroup> ws: array<vec4<f32>, 32u * TN / 4u>;   // [32][TN] E2M1 values, unscaled
var<workgroup> row_scale: array<u32, TN>;
var<workgroup> tokens: array<u32, TM>;

@compute @workgroup_size(WG)
fn moe_gate_up_prefill_f32_mf4w(@builtin(local_invocation_index) lid: u32,
                                @builtin(workgroup_id) wg_id: vec3<u32>) {
    if wg_id.y >= tile_count[0] {
        return;
    }
    let tile = tiles[wg_id.y];
    let e = tile.x;
    if e < params.e0 || e >= params.e0 + params.n_part {
        return;
    }
    let start = tile.y;
    let n_rows = min(TM, offsets[e + 1u] - start);
    let n0 = wg_id.x * TN;
    let n_total = 2u * params.inter;
    let nb = params.hidden / 32u;
    let local_e = e - params.e0;
    mxfp4_init_pairs(lid, WG);
    if lid < TM {
        var t = 0u;
        if lid < n_rows {
            t = sorted[start + lid] / params.k;
        }
        tokens[lid] = t;
    }
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<vec4<f32>, 4>;
    workgroupBarrier();

    for (var b = 0u; b < nb; b++) {
        for (var i = lid; i < TM * 32u; i += WG) {
            let m = i / 32u;
            let kk = i % 32u;
            var v = 0.0;
            if m < n_rows {
                v = xn[tokens[m] * params.hidden + b * 32u + kk];
            }
            let el = kk * TM + m;
            xs[el / 4u][el % 4u] = v;
        }
        // One u32 (8 values) of one row's block per invocation: TN rows x 4 words.
        {
            let n = lid / 4u;
            let word = lid % 4u;
            var q = 0u;
            var s = 127u;
            if n0 + n < n_total {
                let blk = (local_e * n_total + n0 + n) * nb + b;
                q = blocks[blk * 4u + word];
                s = mxfp4_byte(scales[blk >> 2u], blk);
            }
            for (var j = 0u; j < 4u; j++) {
                let v = mxfp4_pairs[(q >> (8u * j)) & 0xffu];
                let kk = 8u * word + 2u * j;
                let el = kk * TN + n;
                ws[el / 4u][el % 4u] = v.x;
                let el1 = (kk + 1u) * TN + n;
                ws[el1 / 4u][el1 % 4u] = v.y;
            }
            if word == 0u {
                row_scale[n] = s;
            }
        }
        workgroupBarrier();
        var part: array<vec4<f32>, 4>;
        for (var kk = 0u; kk < 32u; kk++) {
            let a = xs[(kk * TM) / 4u + ty];
            let w = ws[(kk * TN) / 4u + tx];
            part[0] += a.x * w;
            part[1] += a.y * w;
            part[2] += a.z * w;
            part[3] += a.w * w;
        }
        // Each column's scale as two exact power-of-two factors (see mxfp4_scale).
        for (var j = 0u; j < 4u; j++) {
            let e = i32(row_scale[tx * 4u + j]) - 127;
            let fa = mxfp4_pow2(e / 2);
            let fb = mxfp4_pow2(e - e / 2);
            for (var i = 0u; i < 4u; i++) {
                acc[i][j] += (part[i][j] * fa) * fb;
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = ty * 4u + i;
        if m >= n_rows {
            break;
        }
        for (var p = 0u; p < 2u; p++) {
            let n = n0 + tx * 4u + 2u * p;
            if n < n_total {
                let bi = local_e * n_total + n;
                let g = min(acc[i][2u * p] + bias[bi], params.limit);
                let u = clamp(acc[i][2u * p + 1u] + bias[bi + 1u], -params.limit, params.limit);
                act[(start + m) * params.inter + n / 2u] = g / (1.0 + exp(-1.702 * g)) * (u + 1.0);
            }
        }
    }
}
