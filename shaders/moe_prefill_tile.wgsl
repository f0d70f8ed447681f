// moe_prefill_tile: the K loop both grouped MXFP4 prefill matmuls run (moe_gate_up_prefill_f32_mf4w
// and moe_down_prefill_f32_mf4w). A workgroup of WG invocations computes a TM x TN tile, 4 x 4
// outputs each (tx = lid % 16 picks 4 columns, ty = lid / 16 picks 4 rows). Each K step is one
// 32-block: TM x 32 activations and TN rows' raw E2M1 values go to workgroup memory, and each
// row's E8M0 scale is applied once per block (overflow-safe).
// The including kernel declares moe_route_prefill's `offsets`, `tiles` and `tile_count`,
// `blocks` ([rows, K/32, 16] u8 in u32) and `scales` ([rows, K/32] u8 in u32) of its expert
// part, and `moe_tile_x(start, m, k)`: the activation at column k of sorted entry start + m,
// the only thing the two kernels read differently.

//!include mxfp4
//!include moe_tile_list

const TM: u32 = 64u;
const TN: u32 = 64u;
const WG: u32 = 256u;

var<workgroup> xs: array<vec4<f32>, 32u * TM / 4u>;   // [32][TM]
var<workgroup> ws: array<vec4<f32>, 32u * TN / 4u>;   // [32][TN] E2M1 values, unscaled
var<workgroup> row_scale: array<u32, TN>;

// The including kernel's entry point takes `ids: MoeTileIds`.
struct MoeTileIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wg_id: vec3<u32>,
}

// What invocation ids works on: its workgroup's tile (TN weight rows from n0, of the row tile
// of workgroup row wg_id.y) and its own 4 x 4 outputs in it.
struct MoeTile {
    local_e: u32,   // the tile's expert, counted from e0
    start: u32,     // the tile's first sorted entry
    n_rows: u32,    // the tile's entries; 0: none for this workgroup in this part
    n0: u32,        // the workgroup's first weight row
    out_m: u32,     // the invocation's first output entry, counted from start
    out_n: u32,     // the invocation's first output row
}

fn moe_tile(ids: MoeTileIds, e0: u32, n_part: u32) -> MoeTile {
    let rows = moe_tile_rows(ids.wg_id.y, e0, n_part, TM);
    let n0 = ids.wg_id.x * TN;
    let tx = ids.lid % 16u;
    let ty = ids.lid / 16u;
    return MoeTile(rows.x - e0, rows.y, rows.z, n0, ty * 4u, n0 + tx * 4u);
}

// acc for the tile of sorted entries start.. (n_rows of them valid) and weight rows n0.. of
// local expert local_e (n_total rows of nb blocks each). Call after mxfp4_init_pairs and a
// barrier, from uniform control flow.
fn moe_tile_matmul(lid: u32, start: u32, n_rows: u32, local_e: u32, n0: u32, n_total: u32,
                   nb: u32) -> array<vec4<f32>, 4> {
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var b = 0u; b < nb; b++) {
        for (var i = lid; i < TM * 32u; i += WG) {
            let m = i / 32u;
            let kk = i % 32u;
            var v = 0.0;
            if m < n_rows {
                v = moe_tile_x(start, m, b * 32u + kk);
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
    return acc;
}
