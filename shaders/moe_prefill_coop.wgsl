// moe_prefill_coop: the tile both grouped MXFP4 prefill matmuls compute on cooperative
// matrices (tensor cores), for moe_gate_up_prefill_f16_mf4w and moe_down_prefill_f16_mf4w:
// f16 operands, f32 accumulation, 16 x 16 x 16 fragments. A workgroup of N_SG subgroups
// computes a TM x TN tile (TM sorted entries of one expert x TN of its weight rows);
// subgroup s owns the 32 x 32 block (s / 4, s % 4) of it, 2 x 2 accumulator fragments. Each
// K step is one 32-block: the TM x 32 activations and the TN x 32 weights go to workgroup
// memory as f16.
//
// Overflow safety: a weight is stored as E2M1 x 2^(block scale - row scale), where the row
// scale is the largest block scale of that weight row, so |value| <= 6 and nothing becomes
// inf; the row's 2^(row scale - 127) multiplies the f32 result (two exact steps,
// mxfp4_scale). A block more than 2^14 below its row's largest lands on f16 subnormals: each
// of its weights is then off by at most 2^-24 x 2^(row scale - 127). The activations are the
// including kernel's to keep in range.
//
// The including kernel declares `offsets`, `tiles`, `tile_count` (moe_tile_list), `blocks`
// ([rows, K/32, 16] u8 in u32) and `scales` ([rows, K/32] u8 in u32) of its expert part;
// `moe_coop_x4(start, m, k)`: activations k..k + 3 of sorted entry start + m, within f16's
// range; and `moe_coop_out(tile, m, n, v)`: the results of entry m and weight rows n, n + 1
// of the tile (n even), row scales applied.

enable f16;
enable wgpu_cooperative_matrix;

//!include mxfp4
//!include moe_tile_list

const TM: u32 = 64u;
const TN: u32 = 128u;
const KB: u32 = 32u;
// Row stride of both tiles in halfs: a block's 32 values and 8 of padding (80 bytes, a
// multiple of the 16 that fragment loads want), so that consecutive rows start in different
// banks.
const LDS: u32 = 40u;
const N_SG: u32 = 8u;
// Exactly N_SG subgroups: the host sets WG from the adapter's (fixed) subgroup size, so every
// subgroup owns a block and the matrix operations stay in uniform control flow.
override WG: u32 = 256u;

var<workgroup> xs: array<f16, TM * LDS>;          // [TM][LDS]: entry m, column k
var<workgroup> ws: array<f16, TN * LDS>;          // [TN][LDS]: weight row n, column k
var<workgroup> row_exp: array<u32, TN>;           // each weight row's largest block scale
var<workgroup> staged: array<f32, N_SG * 256u>;  // one 16 x 16 result fragment per subgroup

// The including kernel's entry point takes `ids: CoopIds`.
struct CoopIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
}

// A workgroup's tile: TN weight rows from n0 (of n_total per expert) of local expert
// local_e (counted from the part's first), and the row tile of n_rows entries from start.
struct CoopTile {
    local_e: u32,
    start: u32,
    n_rows: u32,   // 0: nothing for this workgroup in this part
    n0: u32,
    n_total: u32,
}

fn coop_tile(ids: CoopIds, e0: u32, n_part: u32, n_total: u32) -> CoopTile {
    let rows = moe_tile_rows(ids.wg_id.y, e0, n_part, TM);
    return CoopTile(rows.x - e0, rows.y, rows.z, ids.wg_id.x * TN, n_total);
}

// Fills row_exp: the largest scale byte of each of the tile's weight rows (nb blocks each).
fn coop_row_exponents(lid: u32, t: CoopTile, nb: u32) {
    for (var n = lid; n < TN; n += WG) {
        var m = 0u;
        if t.n0 + n < t.n_total {
            let first = (t.local_e * t.n_total + t.n0 + n) * nb;
            for (var b = 0u; b < nb; b++) {
                m = max(m, mxfp4_byte(scales[(first + b) >> 2u], first + b));
            }
        }
        row_exp[n] = m;
    }
}

// Block b of the tile's activations and weights into xs and ws as f16.
fn coop_stage(lid: u32, t: CoopTile, nb: u32, b: u32) {
    for (var i = lid; i < TM * KB / 4u; i += WG) {
        let m = i / (KB / 4u);
        let k = (i % (KB / 4u)) * 4u;
        var v = vec4<f32>(0.0);
        if m < t.n_rows {
            v = moe_coop_x4(t.start, m, b * KB + k);
        }
        let o = m * LDS + k;
        xs[o] = f16(v.x);
        xs[o + 1u] = f16(v.y);
        xs[o + 2u] = f16(v.z);
        xs[o + 3u] = f16(v.w);
    }
    // One u32 (8 values) of one row's block per step: TN rows x 4 words.
    for (var i = lid; i < TN * 4u; i += WG) {
        let n = i / 4u;
        let word = i % 4u;
        var q = 0u;
        var f = 0.0;
        if t.n0 + n < t.n_total {
            let blk = (t.local_e * t.n_total + t.n0 + n) * nb + b;
            q = blocks[blk * 4u + word];
            let s = mxfp4_byte(scales[blk >> 2u], blk);
            // At most 2^0; below 2^-30 every E2M1 value rounds to an f16 zero anyway.
            f = mxfp4_pow2(max(i32(s) - i32(row_exp[n]), -30));
        }
        let o = n * LDS + word * 8u;
        for (var j = 0u; j < 4u; j++) {
            let v = mxfp4_pairs[(q >> (8u * j)) & 0xffu] * f;
            ws[o + 2u * j] = f16(v.x);
            ws[o + 2u * j + 1u] = f16(v.y);
        }
    }
}

// The tile's product, handed to moe_coop_out. Call after mxfp4_init_pairs and a barrier,
// from uniform control flow (every invocation of the workgroup).
fn coop_tile_matmul(ids: CoopIds, t: CoopTile, nb: u32) {
    coop_row_exponents(ids.lid, t, nb);
    workgroupBarrier();
    let sg = ids.sg_id;
    let am = (sg / 4u) * 32u;
    let bn = (sg % 4u) * 32u;
    var c00: coop_mat16x16<f32, C>;
    var c01: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>;
    var c11: coop_mat16x16<f32, C>;
    for (var b = 0u; b < nb; b++) {
        coop_stage(ids.lid, t, nb, b);
        workgroupBarrier();
        for (var kk = 0u; kk < KB; kk += 16u) {
            // xs is row-major in (m, k); ws holds B = W^T column by column.
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[am * LDS + kk], LDS);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(am + 16u) * LDS + kk], LDS);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[bn * LDS + kk], LDS);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(bn + 16u) * LDS + kk], LDS);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }
    coop_emit(ids, t, c00, am, bn);
    coop_emit(ids, t, c01, am, bn + 16u);
    coop_emit(ids, t, c10, am + 16u, bn);
    coop_emit(ids, t, c11, am + 16u, bn + 16u);
}

// One accumulator fragment (rows m0.., columns n0.. of the tile) through the subgroup's
// staging slot to moe_coop_out, two adjacent columns per call. Uniform control flow.
fn coop_emit(ids: CoopIds, t: CoopTile, c: coop_mat16x16<f32, C>, m0: u32, n0: u32) {
    let slot = ids.sg_id * 256u;
    coopStoreT(c, &staged[slot], 16u);
    workgroupBarrier();
    for (var p = ids.sg_lane; p < 128u; p += ids.sg_size) {
        let r = p / 8u;
        let col = (p % 8u) * 2u;
        let m = m0 + r;
        let n = n0 + col;
        if m < t.n_rows && t.n0 + n < t.n_total {
            let v = vec2<f32>(
                mxfp4_scale(staged[slot + r * 16u + col], row_exp[n]),
                mxfp4_scale(staged[slot + r * 16u + col + 1u], row_exp[n + 1u]),
            );
            moe_coop_out(t, m, n, v);
        }
    }
    workgroupBarrier();
}
