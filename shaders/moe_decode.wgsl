// What the two decode expert kernels (moe_gate_up_f32_mf4w, moe_down_f32_mf4w) declare alike:
// the sizes of the weight stream, the token's routing, the experts' biases, the staged input
// in workgroup memory (gate_up: xn; down: every slot's act) and the rows' dot products. Each
// computes N rows of K inputs per selected expert (gate_up: N = 2 inter, K = hidden; down:
// N = hidden, K = inter). The includer declares `blocks` and `scales` (the expert weights)
// and `moe_x(i)`, the input's vec4 number i; mxfp4_word comes from mxfp4_decode (the
// f16-bits decode, or the nibble table on the portable path).

//!include mxfp4_decode

const WG: u32 = 256u;
// Rows per group step (gate_up: gate/up pairs; at most R_MAX).
override R: u32 = 4u;
const R_MAX: u32 = 8u;

override ROWS_PER_WG: u32 = 32u;
// Read the activations straight from global memory (L1) instead of staging them in workgroup
// memory: no staging phase, and workgroup memory stops limiting occupancy.
override X_GLOBAL: bool = false;
override X_VEC4: u32 = 720u;     // the staged input's floats / 4

@group(0) @binding(1) var<storage, read> route: array<u32>;          // [2 k]: ids, weights
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, N]

var<workgroup> xs: array<vec4<f32>, X_VEC4>;

// Where the input's vec4 i sits in xs: each 32-block's 8 vec4 rotated by the block's number.
// A group's lanes each read their own block, 128 bytes apart: in the plain layout all of them
// hit the same 4 of the 32 banks (an 8-way conflict on every 16-byte load); rotated, the 8
// lanes of a quarter-group read 8 different bank quads.
fn moe_xs_index(i: u32) -> u32 {
    return i ^ ((i >> 3u) & 7u);
}

// The partial dot products of R weight rows (block-row numbers `rows`, nb blocks each) with
// the input from vec4 x0 on, over this lane's blocks lane, lane + lanes, ...; each step
// issues the R rows' loads before the arithmetic, then goes word by word, each word's 8
// inputs read once for all R rows (fewer live registers than holding a block's 32), and
// scales each row's block sum once. Lanes then sum with group_sum. (Loading a lane's next
// blocks too, up to 3 steps' worth, or the next step's during this one's arithmetic, was
// slower on the H200: more registers, fewer warps.)
fn moe_rows_dot(rows: array<u32, R_MAX>, nb: u32, lane: u32, lanes: u32, x0: u32) -> array<f32, R_MAX> {
    var acc = array<f32, R_MAX>();
    for (var b = lane; b < nb; b += lanes) {
        var q: array<vec4<u32>, R_MAX>;
        var s: array<u32, R_MAX>;
        for (var r = 0u; r < R; r++) {
            let blk = rows[r] * nb + b;
            q[r] = blocks[blk];
            s[r] = mxfp4_byte(scales[blk >> 2u], blk);
        }
        var part = array<f32, R_MAX>();
        for (var w = 0u; w < 4u; w++) {
            let xa = moe_x(x0 + 8u * b + 2u * w);
            let xb = moe_x(x0 + 8u * b + 2u * w + 1u);
            for (var r = 0u; r < R; r++) {
                part[r] += mxfp4_word(q[r][w], xa, xb);
            }
        }
        for (var r = 0u; r < R; r++) {
            acc[r] += mxfp4_scale(part[r], s[r] + MXFP4_WORD_SHIFT);
        }
    }
    return acc;
}
