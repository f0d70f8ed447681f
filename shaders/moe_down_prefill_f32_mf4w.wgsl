// moe_down_prefill_f32_mf4w: grouped MXFP4 down matmul for a prefill step: for every sorted
// entry of a row tile (one expert), y = W2 act + b2 (unweighted; moe_combine_prefill_f32
// applies the routing weights in a fixed order). Same tiling as moe_gate_up_prefill_f32_mf4w:
// one 32-block per K step, raw E2M1 values in workgroup memory, one scale per row and block.

//!include mxfp4

const TM: u32 = 64u;
const TN: u32 = 64u;
const WG: u32 = 256u;

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

var<workgroup> xs: array<vec4<f32>, 32u * TM / 4u>;
var<workgroup> ws: array<vec4<f32>, 32u * TN / 4u>;
var<workgroup> row_scale: array<u32, TN>;

@compute @workgroup_size(WG)
fn moe_down_prefill_f32_mf4w(@builtin(local_invocation_index) lid: u32,
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
    let nb = params.inter / 32u;
    let local_e = e - params.e0;
    mxfp4_init_pairs(lid, WG);
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
                v = act[(start + m) * params.inter + b * 32u + kk];
            }
            let el = kk * TM + m;
            xs[el / 4u][el % 4u] = v;
        }
        {
            let n = lid / 4u;
            let word = lid % 4u;
            var q = 0u;
            var s = 127u;
            if n0 + n < params.hidden {
                let blk = (local_e * params.hidden + n0 + n) * nb + b;
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
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + tx * 4u + j;
            if n < params.hidden {
                y[(start + m) * params.hidden + n] = acc[i][j] + bias[local_e * params.hidden + n];
            }
        }
    }
}
