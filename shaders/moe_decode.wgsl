// What the two decode expert kernels (moe_gate_up_f32_mf4w, moe_down_f32_mf4w) share: the
// token's routing, the experts' biases and the streaming of weight rows. Each computes N rows
// of K inputs per selected expert (gate_up: N = 2 inter, K = hidden; down: N = hidden, K =
// inter); the includer declares `blocks` and `scales` (the expert weights) and
// `moe_x(i)`, the input's vec4 number i.
//
// A workgroup's invocations are the columns of a row: invocation i owns 32-blocks i, i + WG,
// ... of every row (gpt-oss's K = 2880 is 90 blocks: WG = 96, one block each), so its block of
// the input stays in registers for all the rows it reads. R rows a step: each invocation issues
// its R 16-byte loads before any arithmetic. Each invocation keeps its partial sum per row in
// workgroup memory (`part`), and after one barrier the groups sum the rows' partials in a
// fixed order (deterministic).

// Invocations: K/32 rounded up to a multiple of 32 (at most 256).
override WG: u32 = 96u;
override REDUCE_SIZE: u32 = WG;
// Output rows (per slot) a workgroup owns, a multiple of R.
override ROWS_PER_WG: u32 = 32u;
// The partial sums: [rows the workgroup computes (down: k ROWS_PER_WG), WG].
override PART_LEN: u32 = 3072u;
// Decode E2M1 pairs with integer masks into f16 bits (unpack2x16float) instead of looking
// each nibble up in workgroup memory.
override DECODE_BITS: bool = true;

const R: u32 = 8u;               // rows a step loads at once

@group(0) @binding(1) var<storage, read> route: array<u32>;          // [2 k]: ids, weights
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, N]

var<workgroup> part: array<f32, PART_LEN>;

// One block of one row: sum_i E2M1(q_i) x_i times the block scale 2^(s - 127).
fn moe_block(q: vec4<u32>, s: u32, x: array<vec4<f32>, 8>) -> f32 {
    if DECODE_BITS {
        return mxfp4_scale(mxfp4_dot_block_f16bits(q, x), s + MXFP4_F16BITS_SHIFT);
    }
    return mxfp4_scale(mxfp4_dot_block(q, x), s);
}

// The input's block b (vec4s from x0 on).
fn moe_x_block(x0: u32, b: u32) -> array<vec4<f32>, 8> {
    var xv: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        xv[i] = moe_x(x0 + 8u * b + i);
    }
    return xv;
}

// Writes this invocation's partial sums of `n_rows` weight rows, block-row numbers first_row
// + 0, 1, ... (nb blocks each), to part[(part_row0 + r) * WG + lid], r < n_rows. The input
// starts at vec4 x0.
fn moe_rows_partial(first_row: u32, n_rows: u32, nb: u32, lid: u32, x0: u32, part_row0: u32) {
    let ncol = (nb + WG - 1u) / WG;
    var xv = moe_x_block(x0, min(lid, nb - 1u));
    for (var r0 = 0u; r0 < n_rows; r0 += R) {
        var acc = array<f32, R>();
        for (var c = 0u; c < ncol; c++) {
            // An invocation past the last block loads the last one again and does not use it.
            let b = c * WG + lid;
            let bl = min(b, nb - 1u);
            if ncol > 1u {
                xv = moe_x_block(x0, bl);
            }
            var q: array<vec4<u32>, R>;
            var s: array<u32, R>;
            for (var r = 0u; r < R; r++) {
                let blk = (first_row + min(r0 + r, n_rows - 1u)) * nb + bl;
                q[r] = blocks[blk];
                s[r] = mxfp4_byte(scales[blk >> 2u], blk);
            }
            if b < nb {
                for (var r = 0u; r < R; r++) {
                    acc[r] += moe_block(q[r], s[r], xv);
                }
            }
        }
        for (var r = 0u; r < R; r++) {
            if r0 + r < n_rows {
                part[(part_row0 + r0 + r) * WG + lid] = acc[r];
            }
        }
    }
}

// The sum of row `row`'s partials over the workgroup, in a fixed order; call from every
// invocation (uniform control flow), a group at a time per row.
fn moe_row_sum(row: u32, ids: ReduceIds) -> f32 {
    let lane = group_lane(ids);
    var v = 0.0;
    for (var i = lane; i < WG; i += group_lanes(ids)) {
        v += part[row * WG + i];
    }
    return group_sum(v, ids);
}
