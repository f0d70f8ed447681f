// coop_tile: what the cooperative-matrix prefill matmuls share (moe_prefill_coop for the
// MXFP4 experts, matmul_f16_bf16w for the bf16 matrices): f16 operands, f32 accumulation,
// 16 x 16 x 16 fragments. A workgroup of N_SG subgroups computes a TM x TN tile of the
// output; subgroup s owns the 32 x 32 block (s / 4, s % 4) of it, 2 x 2 accumulator
// fragments, and K advances KB columns a step through workgroup memory: ws holds the step's
// TN x KB weights as f16, xs and xs_lo its TM x KB activations as two f16 each.
//
// Precision: the weights are exact in f16 (E2M1 values, and bf16's 8-bit significands, once
// each row is shifted into range), so only the activations round. Each is stored as a hi
// part (x cut to f16's precision) and a lo part (the remainder, scaled by 2^11), each
// multiplied into its own accumulators, summed at the end: hi + lo is x to within 2^-20 of
// |x| (lo's rounding, either neighbour; 2^-24 absolute below f16's normals), close to the
// f32 kernels' own rounding, for twice the matrix operations, which are not what bounds
// these kernels.
// The including kernel defines `coop_out(m, n, v)`: the results of tile row m and columns n,
// n + 1 (n even), to scale, bound-check and store.

enable f16;
enable wgpu_cooperative_matrix;

//!include f16_split

const TM: u32 = 64u;
const TN: u32 = 128u;
// Columns per K step (two MXFP4 blocks).
const KB: u32 = 64u;
// Row stride of both tiles in halfs: a step's 64 values and 8 of padding (144 bytes, a
// multiple of the 16 that fragment loads want), so that consecutive rows start in different
// banks.
const LDS: u32 = 72u;
const N_SG: u32 = 8u;
// Exactly N_SG subgroups: the host sets WG from the adapter's (fixed) subgroup size, at
// least 32, so every subgroup owns a block, the matrix operations stay in uniform control
// flow, and a step's loads are a fixed few per invocation.
override WG: u32 = 256u;

// The tiles hold four halfs an element: a store writes 8 bytes (the fragment loads take
// vec4<f16> pointers, their strides in vec4s; packed u32 words do not compile on NVIDIA:
// `cargo bench --bench kernels -- coop-layout`).
const LDS4: u32 = LDS / 4u;
var<workgroup> xs: array<vec4<f16>, TM * LDS4>;     // [TM][LDS]: entry m, column k (hi)
var<workgroup> xs_lo: array<vec4<f16>, TM * LDS4>;  // the same, what hi leaves over
var<workgroup> ws: array<vec4<f16>, TN * LDS4>;     // [TN][LDS]: weight row n, column k
// One 16 x 16 result fragment per subgroup, rows of 20 floats: with 16, a fragment store's
// lanes of one column pair fall 4 to a bank.
const STAGED_LD: u32 = 20u;
var<workgroup> staged: array<f32, N_SG * 16u * STAGED_LD>;

// The including kernel's entry point takes `ids: CoopIds`.
struct CoopIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
}

// Which block of the tile a subgroup computes. A full tile: 32 x 32 (2 x 2 fragments) at
// block (s / 4, s % 4). A tile of at most 32 rows (an expert's last few entries, the last
// tokens of a step): 32 x 16 (2 x 1) at column block s, so that every subgroup still works
// and no products are made for rows that do not exist. The same in every invocation of the
// workgroup (it depends on the tile's rows only).
struct CoopBlock {
    am: u32,
    bn: u32,
    half: bool,
}

fn coop_block(sg_id: u32, n_rows: u32) -> CoopBlock {
    if n_rows <= TM / 2u {
        return CoopBlock(0u, sg_id * 16u, true);
    }
    return CoopBlock((sg_id / 4u) * 32u, (sg_id % 4u) * 32u, false);
}

// One step's products into the subgroup's accumulators: c[0..4] take the hi parts'
// products (fragments (0, 0), (0, 1), (1, 0), (1, 1) of its block), c[4..8] the lo parts'
// (scaled by 2^11); a half block uses the first column only.
fn coop_mma(blk: CoopBlock, c: ptr<function, array<coop_mat16x16<f32, C>, 8>>) {
    let am = blk.am;
    let bn = blk.bn;
    for (var kk = 0u; kk < KB; kk += 16u) {
        // xs is row-major in (m, k); ws holds B = W^T column by column.
        let k4 = kk / 4u;
        let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[bn * LDS4 + k4], LDS4);
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[am * LDS4 + k4], LDS4);
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(am + 16u) * LDS4 + k4], LDS4);
        (*c)[0] = coopMultiplyAdd(a0, b0, (*c)[0]);
        (*c)[2] = coopMultiplyAdd(a1, b0, (*c)[2]);
        let l0 = coopLoadT<coop_mat16x16<f16, A>>(&xs_lo[am * LDS4 + k4], LDS4);
        let l1 = coopLoadT<coop_mat16x16<f16, A>>(&xs_lo[(am + 16u) * LDS4 + k4], LDS4);
        (*c)[4] = coopMultiplyAdd(l0, b0, (*c)[4]);
        (*c)[6] = coopMultiplyAdd(l1, b0, (*c)[6]);
        // The second column, once for a full block and not for a half one: a loop rather
        // than an `if`, since naga's uniformity analysis takes a function argument as
        // varying and refuses matrix operations inside a branch on it (the block is the same
        // in every invocation of the workgroup; a loop's exit test is not held against it).
        for (var j = 0u; j < select(1u, 0u, blk.half); j++) {
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(bn + 16u) * LDS4 + k4], LDS4);
            (*c)[1] = coopMultiplyAdd(a0, b1, (*c)[1]);
            (*c)[3] = coopMultiplyAdd(a1, b1, (*c)[3]);
            (*c)[5] = coopMultiplyAdd(l0, b1, (*c)[5]);
            (*c)[7] = coopMultiplyAdd(l1, b1, (*c)[7]);
        }
    }
}

// Four activations as f16_split's two parts, for xs and xs_lo.
struct CoopX4 {
    hi: vec4<f16>,
    lo: vec4<f16>,
}

// v (already within f16's range) as its two parts.
fn coop_split_x4(v: vec4<f32>) -> CoopX4 {
    let hi = f16_hi(v);
    return CoopX4(vec4<f16>(hi), vec4<f16>(f16_lo(v, hi)));
}

// Four activations at halfs o..o + 4 (o a multiple of 4) of xs and xs_lo.
fn coop_put_x4(o: u32, v: CoopX4) {
    xs[o / 4u] = v.hi;
    xs_lo[o / 4u] = v.lo;
}

// Eight weights at halfs o..o + 8 (o a multiple of 8) of ws: a then b.
fn coop_put_w8(o: u32, a: vec4<f32>, b: vec4<f32>) {
    coop_put_w8h(o, vec4<f16>(a), vec4<f16>(b));
}

// coop_put_w8 for weights already in f16.
fn coop_put_w8h(o: u32, a: vec4<f16>, b: vec4<f16>) {
    ws[o / 4u] = a;
    ws[o / 4u + 1u] = b;
}

// One result fragment of the subgroup (hi products plus lo products / 2^11), tile rows m0 ..
// m0 + 16 and columns n0 .. n0 + 16, through its staging slot to coop_out, two adjacent
// columns per call. Uniform control flow.
fn coop_emit_one(ids: CoopIds, m0: u32, n0: u32, v: coop_mat16x16<f32, C>) {
    let slot = ids.sg_id * 16u * STAGED_LD;
    coopStoreT(v, &staged[slot], STAGED_LD);
    workgroupBarrier();
    for (var p = ids.sg_lane; p < 128u; p += ids.sg_size) {
        let r = p / 8u;
        let col = (p % 8u) * 2u;
        let pair = vec2<f32>(staged[slot + r * STAGED_LD + col], staged[slot + r * STAGED_LD + col + 1u]);
        coop_out(m0 + r, n0 + col, pair);
    }
    workgroupBarrier();
}

// The subgroup's four fragments (two for a half block: its first column), each by a constant
// index: an accumulator array indexed by a loop counter lives in local memory. The bf16
// tiles and moe_gate_up_prefill_f16_mf4w are faster so (BENCHMARKS.md, change 50). The
// second column is a loop step, not a branch (see coop_mma).
fn coop_emit(ids: CoopIds, blk: CoopBlock, c: array<coop_mat16x16<f32, C>, 8>) {
    let lo = 1.0 / F16_LO_SCALE;
    coop_emit_one(ids, blk.am, blk.bn, c[0] + c[4] * lo);
    for (var j = 0u; j < select(1u, 0u, blk.half); j++) {
        coop_emit_one(ids, blk.am, blk.bn + 16u, c[1] + c[5] * lo);
    }
    coop_emit_one(ids, blk.am + 16u, blk.bn, c[2] + c[6] * lo);
    for (var j = 0u; j < select(1u, 0u, blk.half); j++) {
        coop_emit_one(ids, blk.am + 16u, blk.bn + 16u, c[3] + c[7] * lo);
    }
}

// coop_emit with the fragments in a loop (the accumulators then indexed by its counter, in
// local memory): moe_down_prefill_f16_mf4w's fastest (moe_prefill_coop's coop_tile_matmul).
// The subgroup's results (hi products plus lo products / 2^11; four fragments, two for a
// half block) through its staging slot to coop_out, two adjacent columns per call. Uniform
// control flow.
fn coop_emit_looped(ids: CoopIds, blk: CoopBlock, c: array<coop_mat16x16<f32, C>, 8>) {
    let slot = ids.sg_id * 16u * STAGED_LD;
    // Fragments 0 to 3, or 0 and 2 of a half block (a loop step, not a branch: see coop_mma).
    for (var f = 0u; f < 4u; f += select(1u, 2u, blk.half)) {
        coopStoreT(c[f] + c[f + 4u] * (1.0 / F16_LO_SCALE), &staged[slot], STAGED_LD);
        workgroupBarrier();
        let m0 = blk.am + (f / 2u) * 16u;
        let n0 = blk.bn + (f % 2u) * 16u;
        for (var p = ids.sg_lane; p < 128u; p += ids.sg_size) {
            let r = p / 8u;
            let col = (p % 8u) * 2u;
            let v = vec2<f32>(staged[slot + r * STAGED_LD + col], staged[slot + r * STAGED_LD + col + 1u]);
            coop_out(m0 + r, n0 + col, v);
        }
        workgroupBarrier();
    }
}
