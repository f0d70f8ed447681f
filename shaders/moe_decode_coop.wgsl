// moe_decode_coop: what the cooperative-matrix decode expert kernels (moe_gate_up_f16_mf4w,
// moe_down_f16_mf4w) share: a subgroup's 16 weight rows times one token's input over a range
// of K, the multiply-adds on the matrix units instead of in the invocations' ALUs (the f32
// decode kernels spend about half their time on them, BENCHMARKS.md change 11).
//
// A token is a single column, so a 16 x 16 x 16 product carries it in two of its 16 rows:
// A's row 0 holds the input's hi parts and row 1 its lo parts (as in coop_tile), B is 16
// weight rows' 16 columns, and C's rows 0 and 1 are the two partial sums of those rows. A's
// other 14 rows are whatever follows in workgroup memory (the next chunks): their products
// land in C rows nobody reads. Each chunk of 16 inputs is stored as [hi x 16, lo x 16], so A
// is one load with a row stride of 16.
//
// A subgroup owns STEPS K steps of BPS 32-blocks of its 16 rows: its invocations load a step's
// blocks (16 bytes each) before the previous step's products, decode each E2M1 pair into f16
// bits with integer masks (mxfp4_decode_f16bits' layout: nibbles i and i + 4 of a word share a
// pair) and one f16 multiply by 2^(block scale - row reference); the input is staged in the
// same order (positions 2i, 2i + 1 of a word's 8 hold elements i, i + 4), so the dot product
// is unchanged.
//
// Range and precision: the row reference is the largest block scale of the row within the
// subgroup's range, so every weight is E2M1 x 2^(<= 0), exact in f16 down to 2^-14 below the
// reference and flushed to a multiple of 2^-24 below that; the input is multiplied by the power
// of two that puts its largest magnitude in [2^14, 2^15) (never inf in f16), split into hi
// (cut to f16's precision) and lo (the remainder times 2^11), as coop_tile does; both powers
// come back in f32 (mxfp4_scale). The matrix units accumulate in f32 (BENCHMARKS.md change 13
// says how).
//
// The includer declares `blocks` (array<vec4<u32>>, a 32-block each), `scales` (array<u32>,
// u8 per block) and `coop_x(i)`: its input's vec4 number i (f32, from global memory).

enable f16;
enable wgpu_cooperative_matrix;

//!include mxfp4

// The adapter's subgroup size (fixed, at least 32) and subgroups per workgroup: the host sets
// them, and WG = SG x N_SG.
override SG: u32 = 32u;
override N_SG: u32 = 4u;
override WG: u32 = 128u;
// 32-blocks of each row per K step (even, so that a step's 16 x BPS blocks split evenly over
// 32 invocations), and the K steps one subgroup takes.
override BPS: u32 = 2u;
override STEPS: u32 = 15u;
// Workgroup memory, each N_SG regions: the staged input (XS_LEN halfs: STEPS x BPS x 64 and
// 14 x 16 of padding for A's unread rows), a step's decoded weights (16 rows of WS_LDS
// halfs), and a result fragment (256 floats).
override XS_TOTAL: u32 = 8576u;
override WS_TOTAL: u32 = 4608u;
override ST_TOTAL: u32 = 1024u;

const CHUNK: u32 = 16u;
// Rows a subgroup computes: a fragment's columns.
const COOP_ROWS: u32 = 16u;

var<workgroup> coop_xs: array<f16, XS_TOTAL>;
var<workgroup> coop_ws: array<f16, WS_TOTAL>;
var<workgroup> coop_st: array<f32, ST_TOTAL>;

struct CoopIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
}

fn coop_xs_len() -> u32 {
    return STEPS * BPS * 64u + 14u * CHUNK;
}

// Weight rows' stride in coop_ws (halfs): a step's BPS x 32 and 8 of padding, so that
// consecutive rows start in different banks.
fn coop_ws_lds() -> u32 {
    return BPS * 32u + 8u;
}

// The 8 inputs at vec4s i, i + 1 (elements i..i + 7 of a word), times 2^t, as hi and lo f16
// parts at xs[o..o + 8] and xs[o + 16..o + 24] in the word's pair order.
fn coop_stage_word(o: u32, a: vec4<f32>, b: vec4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let v = vec2<f32>(a[i], b[i]);
        let hi = bitcast<vec2<f32>>(bitcast<vec2<u32>>(v) & vec2<u32>(0xffffe000u));
        let lo = (v - hi) * 2048.0;
        coop_xs[o + 2u * i] = f16(hi.x);
        coop_xs[o + 2u * i + 1u] = f16(hi.y);
        coop_xs[o + CHUNK + 2u * i] = f16(lo.x);
        coop_xs[o + CHUNK + 2u * i + 1u] = f16(lo.y);
    }
}

// 2^k as an f16 pair (k <= 15; exact down to f16's smallest subnormal, 2^-24), 0 below.
fn coop_pow2_f16x2(k: i32) -> vec2<f16> {
    let f = select(0.0, mxfp4_pow2(max(k, -24)), k >= -24);
    return vec2<f16>(f16(f));
}

// One step's blocks for one invocation: BPS x 16 / 32 blocks (SG = 32; larger subgroups
// take fewer), zeros past the range.
const FETCH_MAX: u32 = 4u;
struct CoopStep {
    q: array<vec4<u32>, FETCH_MAX>,
    f: array<vec2<f16>, FETCH_MAX>,
}

// The invocation's j-th block of a step: (row in 0..16, block in 0..BPS).
fn coop_block_of(lane: u32, j: u32) -> vec2<u32> {
    let i = lane + j * SG;
    return vec2<u32>(i / BPS, i % BPS);
}

fn coop_fetch(lane: u32, row0: u32, nb: u32, step: u32, refs: array<u32, FETCH_MAX>) -> CoopStep {
    var r: CoopStep;
    let per_lane = COOP_ROWS * BPS / SG;
    for (var j = 0u; j < per_lane; j++) {
        let rb = coop_block_of(lane, j);
        let b = step * BPS + rb.y;
        if b < nb {
            let blk = (row0 + rb.x) * nb + b;
            r.q[j] = blocks[blk];
            let s = mxfp4_byte(scales[blk >> 2u], blk);
            // E2M1 bits read as value x 2^-14: the factor is 2^(14 + s - reference).
            r.f[j] = coop_pow2_f16x2(14 + i32(s) - i32(refs[j]));
        }
    }
    return r;
}

// An f16 pair from its bits (WGSL has no bitcast from u32 to vec2<f16> in naga): the round
// trip through f32 is exact, subnormals included, and a compiler may fold it away.
fn coop_f16x2(bits: u32) -> vec2<f16> {
    return vec2<f16>(unpack2x16float(bits));
}

// A fetched step into the subgroup's coop_ws region (row-major: row n, columns of the step).
fn coop_decode(lane: u32, ws0: u32, r: CoopStep) {
    let per_lane = COOP_ROWS * BPS / SG;
    let lds = coop_ws_lds();
    for (var j = 0u; j < per_lane; j++) {
        let rb = coop_block_of(lane, j);
        let o = ws0 + rb.x * lds + rb.y * 32u;
        for (var w = 0u; w < 4u; w++) {
            let word = r.q[j][w];
            let p0 = coop_f16x2(((word << 9u) & MXFP4_F16_MAG) | ((word << 12u) & MXFP4_F16_SIGN)) * r.f[j];
            let p1 = coop_f16x2(((word << 5u) & MXFP4_F16_MAG) | ((word << 8u) & MXFP4_F16_SIGN)) * r.f[j];
            let p2 = coop_f16x2(((word << 1u) & MXFP4_F16_MAG) | ((word << 4u) & MXFP4_F16_SIGN)) * r.f[j];
            let p3 = coop_f16x2(((word >> 3u) & MXFP4_F16_MAG) | (word & MXFP4_F16_SIGN)) * r.f[j];
            let ow = o + 8u * w;
            coop_ws[ow] = p0.x;
            coop_ws[ow + 1u] = p0.y;
            coop_ws[ow + 2u] = p1.x;
            coop_ws[ow + 3u] = p1.y;
            coop_ws[ow + 4u] = p2.x;
            coop_ws[ow + 5u] = p2.y;
            coop_ws[ow + 6u] = p3.x;
            coop_ws[ow + 7u] = p3.y;
        }
    }
}

// Rows row0 .. row0 + 15 of the bound weights (nb blocks each) times the input from vec4 x0
// over the K steps step0 .. step0 + STEPS (blocks past nb count as zeros); `live` false
// (uniform across the subgroup) computes nothing but still takes every barrier. Returns, in
// lanes 0..16, row lane's partial sum (in f32, both powers of two applied). Call from uniform
// control flow: it holds workgroup barriers.
fn coop_rows(ids: CoopIds, live: bool, row0: u32, nb: u32, step0: u32, x0: u32) -> f32 {
    let lane = ids.sg_lane;
    let xs0 = ids.sg_id * coop_xs_len();
    let ws0 = ids.sg_id * COOP_ROWS * coop_ws_lds();
    let b0 = min(step0 * BPS, nb);
    let b1 = select(b0, min((step0 + STEPS) * BPS, nb), live);
    let n_words = (b1 - b0) * 4u;   // 8 inputs each

    // The input's scale: its largest magnitude into [2^14, 2^15).
    var m = 0.0;
    for (var i = lane; i < n_words; i += SG) {
        let a = abs(coop_x(x0 + 8u * b0 + 2u * i));
        let b = abs(coop_x(x0 + 8u * b0 + 2u * i + 1u));
        m = max(m, max(max(max(a.x, a.y), max(a.z, a.w)), max(max(b.x, b.y), max(b.z, b.w))));
    }
    m = subgroupMax(m);
    let t = clamp(14 - (i32((bitcast<u32>(m) >> 23u) & 0xffu) - 127), -126, 127);
    let xf = mxfp4_pow2(t);
    for (var i = lane; i < n_words; i += SG) {
        // Word i of the range: chunk i / 2, half i % 2 of its 16.
        let o = xs0 + (i / 2u) * 2u * CHUNK + (i % 2u) * 8u;
        coop_stage_word(o, coop_x(x0 + 8u * b0 + 2u * i) * xf, coop_x(x0 + 8u * b0 + 2u * i + 1u) * xf);
    }
    for (var i = n_words * CHUNK + lane; i < coop_xs_len(); i += SG) {
        coop_xs[xs0 + i] = f16(0.0);
    }

    // Each row's reference: its largest block scale in the range (lanes n, n + 16, ... share
    // row n's blocks, then exchange).
    var rmax = 0u;
    let n = lane % COOP_ROWS;
    for (var b = b0 + lane / COOP_ROWS; b < b1; b += SG / COOP_ROWS) {
        let blk = (row0 + n) * nb + b;
        rmax = max(rmax, mxfp4_byte(scales[blk >> 2u], blk));
    }
    for (var o = COOP_ROWS; o < SG; o <<= 1u) {
        rmax = max(rmax, subgroupShuffleXor(rmax, o));
    }
    var refs: array<u32, FETCH_MAX>;
    for (var j = 0u; j < COOP_ROWS * BPS / SG; j++) {
        refs[j] = subgroupShuffle(rmax, coop_block_of(lane, j).x);
    }

    var c: coop_mat16x16<f32, C>;
    let end = select(0u, nb, live);
    var next = coop_fetch(lane, row0, end, step0, refs);
    let lds = coop_ws_lds();
    for (var s = 0u; s < STEPS; s++) {
        let cur = next;
        if s + 1u < STEPS {
            next = coop_fetch(lane, row0, end, step0 + s + 1u, refs);
        }
        coop_decode(lane, ws0, cur);
        workgroupBarrier();
        for (var kc = 0u; kc < 2u * BPS; kc++) {
            let a = coopLoadT<coop_mat16x16<f16, A>>(&coop_xs[xs0 + (s * 2u * BPS + kc) * 2u * CHUNK], CHUNK);
            let w = coopLoad<coop_mat16x16<f16, B>>(&coop_ws[ws0 + kc * CHUNK], lds);
            c = coopMultiplyAdd(a, w, c);
        }
        workgroupBarrier();
    }

    let st0 = ids.sg_id * 256u;
    coopStoreT(c, &coop_st[st0], 16u);
    workgroupBarrier();
    var v = 0.0;
    if lane < COOP_ROWS && live {
        let sum = coop_st[st0 + lane] + coop_st[st0 + CHUNK + lane] * (1.0 / 2048.0);
        // x 2^(reference - 127) for the weights, 2^-t for the input.
        v = mxfp4_scale(sum, u32(i32(rmax) - t));
    }
    return v;
}
