// moe_prefill_coop: the tile both grouped MXFP4 prefill matmuls compute on cooperative
// matrices (coop_tile), for moe_gate_up_prefill_f16_mf4w and moe_down_prefill_f16_mf4w: TM
// sorted entries of one expert x TN of its weight rows, K in steps of two 32-blocks (a block
// past the end of K reads as zeros).
//
// Overflow safety: a weight is stored as E2M1 x 2^(block scale - row scale), where the row
// scale is the largest block scale of that weight row, so |value| <= 6 and nothing becomes
// inf; the row's 2^(row scale - 127) multiplies the f32 result (two exact steps,
// mxfp4_scale). The weights are decoded as f16 pairs (a byte table) times the block's
// 2^(block scale - row scale) in f16 multiplies, each exact or rounded once, so every weight
// is its f32 value rounded to f16. A block more than 2^14 below its row's largest lands on
// f16 subnormals: each of its weights is then off by at most 2^-24 x 2^(row scale - 127).
// The activations are the including kernel's to keep in range.
//
// The including kernel declares `offsets`, `tiles`, `tile_count` (moe_tile_list), `blocks`
// ([rows, K/32, 16] u8 in u32), `scales` ([rows, K/32] u8 in u32) and `row_exps` ([rows] u8
// in u32: each row's largest scale byte, row_exp_mf4w's) of its expert part;
// `MoeX`, the type its activations are loaded as, with `moe_coop_x4(start, m, k) -> MoeX`:
// activations k..k + 3 of sorted entry start + m, within f16's range, and
// `moe_coop_parts(v: MoeX) -> CoopX4`: them as the tile stores them (called only after the
// step's products, so that the loads stay in flight during them); and `moe_coop_out(tile, m, n, v)`: the results of entry m and weight rows n, n + 1
// of the tile (n even), row scales applied.

//!include coop_tile
//!include mxfp4
//!include moe_tile_list
//!include coop_weights

// A step's loads per invocation (TM x KB / 4 runs of activations, TN x 8 weight words, over
// WG >= 256 invocations).
const FETCH: u32 = 4u;

var<workgroup> row_exp: array<u32, TN>;   // each weight row's largest block scale

// A workgroup's tile: TN weight rows from n0 (of n_total per expert) of local expert
// local_e (counted from the part's first), and the row tile of n_rows entries from start.
struct CoopTile {
    local_e: u32,
    start: u32,
    n_rows: u32,   // 0: nothing for this workgroup in this part
    n0: u32,
    n_total: u32,
}

// The workgroup's tile, for coop_out (the same in every invocation).
var<private> coop_t: CoopTile;

fn coop_out(m: u32, n: u32, v: vec2<f32>) {
    let t = coop_t;
    if m < t.n_rows && t.n0 + n < t.n_total {
        moe_coop_out(t, m, n, vec2<f32>(mxfp4_scale(v.x, row_exp[n]), mxfp4_scale(v.y, row_exp[n + 1u])));
    }
}

fn coop_tile(ids: CoopIds, e0: u32, n_part: u32, n_total: u32) -> CoopTile {
    let rows = moe_tile_rows(ids.wg_id.y, e0, n_part, TM);
    return CoopTile(rows.x - e0, rows.y, rows.z, ids.wg_id.x * TN, n_total);
}

// Fills row_exp: the largest scale byte of each of the tile's weight rows, which
// row_exp_mf4w computed once per model (a scan here, before every tile's first product,
// cost more than the byte; BENCHMARKS.md, changes 28 and 31).
fn coop_row_exponents(lid: u32, t: CoopTile) {
    for (var n = lid; n < TN; n += WG) {
        var m = 0u;
        if t.n0 + n < t.n_total {
            let row = t.local_e * t.n_total + t.n0 + n;
            m = mxfp4_byte(row_exps[row >> 2u], row);
        }
        row_exp[n] = m;
    }
}

// One load of a K step (an invocation makes FETCH of them), held in registers while the
// previous step multiplies. Four named loads, not an array indexed by a loop counter: the
// driver keeps such an array in local memory (pipeline_stats' "Local Memory Size"), so
// every step would write its fetched words there, waiting for the loads, and read them back
// (BENCHMARKS.md, change 48).
struct CoopLoad {
    x: MoeX,   // activations: a run of 4
    q: u32,    // weights: a word of 8 E2M1 values
    s: u32,    // the scale word holding the weight word's block scale
}

struct CoopFetch {
    l0: CoopLoad,
    l1: CoopLoad,
    l2: CoopLoad,
    l3: CoopLoad,
}

// coop_fetch's and coop_store's four calls.
const_assert FETCH == 4u;

// Load j of step `step` (columns step KB ..) of the tile's activations and weights:
// invocation lid's share, as coop_store_one places it.
fn coop_fetch_one(lid: u32, t: CoopTile, nb: u32, step: u32, j: u32) -> CoopLoad {
    var r: CoopLoad;
    let i = lid + j * WG;
    let m = i / (KB / 4u);
    if m < t.n_rows && i < TM * KB / 4u {
        r.x = moe_coop_x4(t.start, m, step * KB + (i % (KB / 4u)) * 4u);
    }
    // TN rows x 8 words (two blocks of 4).
    let n = i / 8u;
    let b = step * 2u + (i % 8u) / 4u;
    if n < TN && t.n0 + n < t.n_total && b < nb {
        let blk = (t.local_e * t.n_total + t.n0 + n) * nb + b;
        r.q = blocks[blk * 4u + i % 4u];
        // As loaded: taking the byte here would wait for the load before the step's
        // products (coop_store_one takes it).
        r.s = scales[blk >> 2u];
    }
    return r;
}

fn coop_fetch(lid: u32, t: CoopTile, nb: u32, step: u32) -> CoopFetch {
    return CoopFetch(
        coop_fetch_one(lid, t, nb, step, 0u),
        coop_fetch_one(lid, t, nb, step, 1u),
        coop_fetch_one(lid, t, nb, step, 2u),
        coop_fetch_one(lid, t, nb, step, 3u),
    );
}

// Load j of a fetched step (coop_fetch's `step`) into xs and ws as f16 (zeros where nothing
// was fetched). Activation rows past the tile's n_rows are left as they are: their products
// only reach result rows that coop_out drops.
fn coop_store_one(lid: u32, r: CoopLoad, t: CoopTile, nb: u32, step: u32, j: u32) {
    let i = lid + j * WG;
    if i < TM * KB / 4u && i / (KB / 4u) < t.n_rows {
        let o = (i / (KB / 4u)) * LDS + (i % (KB / 4u)) * 4u;
        coop_put_x4(o, moe_coop_parts(r.x));
    }
    if i < TN * 8u {
        let o = (i / 8u) * LDS + (i % 8u) * 8u;
        // The word's block scale less its row's (a word past the end holds zeros and scale
        // 0: any d decodes it to zeros). Below 2^-30 every E2M1 value rounds to an f16 zero
        // anyway.
        let n = i / 8u;
        let blk = (t.local_e * t.n_total + t.n0 + n) * nb + step * 2u + (i % 8u) / 4u;
        let d = max(i32(mxfp4_byte(r.s, blk)) - i32(row_exp[n]), -30);
        coop_put_weights(o, r.q, d);
    }
}

fn coop_store(lid: u32, r: CoopFetch, t: CoopTile, nb: u32, step: u32) {
    coop_store_one(lid, r.l0, t, nb, step, 0u);
    coop_store_one(lid, r.l1, t, nb, step, 1u);
    coop_store_one(lid, r.l2, t, nb, step, 2u);
    coop_store_one(lid, r.l3, t, nb, step, 3u);
}

// coop_tile_matmul_indexed's step: its loads as arrays indexed by the FETCH loop's counter,
// which the driver keeps in local memory (coop_tile_matmul says which kernel takes which).
struct CoopFetchIndexed {
    x: array<MoeX, FETCH>,        // activations: FETCH runs of 4
    q: array<u32, FETCH>,         // weights: FETCH words of 8 E2M1 values
    s: array<u32, FETCH>,         // the scale word holding each weight word's block scale
}

// Step `step` (columns step KB ..) of the tile's activations and weights: invocation lid's
// share, as coop_store places it.
fn coop_fetch_indexed(lid: u32, t: CoopTile, nb: u32, step: u32) -> CoopFetchIndexed {
    var r: CoopFetchIndexed;
    for (var j = 0u; j < FETCH; j++) {
        let i = lid + j * WG;
        let m = i / (KB / 4u);
        if m < t.n_rows && i < TM * KB / 4u {
            r.x[j] = moe_coop_x4(t.start, m, step * KB + (i % (KB / 4u)) * 4u);
        }
        // TN rows x 8 words (two blocks of 4).
        let n = i / 8u;
        let b = step * 2u + (i % 8u) / 4u;
        if n < TN && t.n0 + n < t.n_total && b < nb {
            let blk = (t.local_e * t.n_total + t.n0 + n) * nb + b;
            r.q[j] = blocks[blk * 4u + i % 4u];
            // As loaded: taking the byte here would wait for the load before the step's
            // products (coop_store takes it).
            r.s[j] = scales[blk >> 2u];
        }
    }
    return r;
}

// A fetched step (coop_fetch's `step`) into xs and ws as f16 (zeros where nothing was
// fetched). Activation rows past the tile's n_rows are left as they are: their products only
// reach result rows that coop_out drops.
fn coop_store_indexed(lid: u32, r: CoopFetchIndexed, t: CoopTile, nb: u32, step: u32) {
    for (var j = 0u; j < FETCH; j++) {
        let i = lid + j * WG;
        if i < TM * KB / 4u && i / (KB / 4u) < t.n_rows {
            let o = (i / (KB / 4u)) * LDS + (i % (KB / 4u)) * 4u;
            coop_put_x4(o, moe_coop_parts(r.x[j]));
        }
        if i < TN * 8u {
            let o = (i / 8u) * LDS + (i % 8u) * 8u;
            // The word's block scale less its row's (a word past the end holds zeros and
            // scale 0: any d decodes it to zeros). Below 2^-30 every E2M1 value rounds to an
            // f16 zero anyway.
            let n = i / 8u;
            let blk = (t.local_e * t.n_total + t.n0 + n) * nb + step * 2u + (i % 8u) / 4u;
            let d = max(i32(mxfp4_byte(r.s[j], blk)) - i32(row_exp[n]), -30);
            coop_put_weights(o, r.q[j], d);
        }
    }
}


// The tile's product, handed to moe_coop_out. Call after coop_init_weights and a barrier,
// from uniform control flow (every invocation of the workgroup). Each step's global loads
// are issued before the previous step's multiplies, so that they overlap.
//
// Two compositions of the same arithmetic, with bit-identical results, because the
// driver's compiler times them differently in each kernel and no rule from the source
// predicts which (BENCHMARKS.md, changes 48-50): coop_tile_matmul (named loads, fragments
// emitted by constant index: nothing in local memory) is gate_up's fastest (-16%) and
// costs down 8%; coop_tile_matmul_indexed (the loads as arrays, the emit's loop) is down's.
fn coop_tile_matmul(ids: CoopIds, t: CoopTile, nb: u32) {
    coop_t = t;
    coop_row_exponents(ids.lid, t);
    workgroupBarrier();
    let blk = coop_block(ids.sg_id, t.n_rows);
    var c: array<coop_mat16x16<f32, C>, 8>;
    let steps = (nb + 1u) / 2u;
    var next = coop_fetch(ids.lid, t, nb, 0u);
    for (var step = 0u; step < steps; step++) {
        coop_store(ids.lid, next, t, nb, step);
        workgroupBarrier();
        if step + 1u < steps {
            next = coop_fetch(ids.lid, t, nb, step + 1u);
        }
        coop_mma(blk, &c);
        workgroupBarrier();
    }
    coop_emit(ids, blk, c);
}

// coop_tile_matmul with the indexed loads and the looped emit.
fn coop_tile_matmul_indexed(ids: CoopIds, t: CoopTile, nb: u32) {
    coop_t = t;
    coop_row_exponents(ids.lid, t);
    workgroupBarrier();
    let blk = coop_block(ids.sg_id, t.n_rows);
    var c: array<coop_mat16x16<f32, C>, 8>;
    let steps = (nb + 1u) / 2u;
    var next = coop_fetch_indexed(ids.lid, t, nb, 0u);
    for (var step = 0u; step < steps; step++) {
        coop_store_indexed(ids.lid, next, t, nb, step);
        workgroupBarrier();
        if step + 1u < steps {
            next = coop_fetch_indexed(ids.lid, t, nb, step + 1u);
        }
        coop_mma(blk, &c);
        workgroupBarrier();
    }
    coop_emit_looped(ids, blk, c);
}
