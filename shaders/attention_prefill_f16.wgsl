// attention_prefill_f16: attention_prefill_f32 (causal and sliding-window attention with
// sinks over the KV cache for the tokens of a prefill step) with its two products on
// cooperative matrices: f16 operands, f32 accumulation. Head dimension 64 only.
//
// A workgroup takes BQ = 64 queries of one head; subgroup s owns queries 16 s ..< 16 s + 16
// and walks the visible keys in blocks of BK = 32, keeping each row's running max m and sum
// l (m starts at the sink logit and l at exp(sink - m) = 1, as in attention_prefill_f32).
// Per block: the scores S = Q K^T of the subgroup's 16 rows x 32 keys on matrices, through
// workgroup memory (st) to its lanes, which mask them, move the running state and write P =
// exp(S - m); then P V on matrices, through st again, into the output rows the lanes hold in
// registers (o = o * exp(m_old - m) + P V: a fragment's rows cannot be scaled in place).
//
// Precision: the keys and values are f16 already in an f16 cache (the host runs this kernel
// only there), so they are exact operands. The queries and P are not: each is split into two
// f16 parts (f16_split), each multiplied with its own accumulators, so both products are
// the f32 kernel's to within 2^-20 of each term, plus f32 rounding in another order. Range:
// each query row is divided by a power of two that brings its largest |q| below 2^15 (the
// scores get it back, exact); P is at most 1.

enable f16;
enable wgpu_cooperative_matrix;

//!include attention
//!include f16_split

const BQ: u32 = 64u;
const BK: u32 = 32u;
const D: u32 = 64u;
const N_SG: u32 = 4u;
// Row stride of the f16 tiles in halfs: 64 and 8 of padding (144 bytes, a multiple of the 16
// that fragment loads want), so that consecutive rows start in different banks.
const LD: u32 = 72u;
const LD4: u32 = LD / 4u;
const MASKED: f32 = -1.0e30;
// The host sets WG to N_SG subgroups of the adapter's fixed size (32 or 64): every subgroup
// owns 16 query rows, and the matrix operations stay in uniform control flow.
override WG: u32 = 128u;
// Lanes per query row (2 or 4), each holding KPL of a block's keys and DPL of the row's
// output dimensions (private arrays are sized for 2).
override LANES: u32 = WG / N_SG / 16u;
override KPL: u32 = BK / LANES;
override DPL: u32 = D / LANES;
const MAX_KPL: u32 = BK / 2u;
const MAX_DPL: u32 = D / 2u;

// Bindings 0-2 (params, step, qkv) are attention.wgsl's. The f16 cache (kv_cache_f16.wgsl's
// words, element 2i in word i's low half) read as the halfs it holds: the host runs this
// kernel only on such a cache.
@group(0) @binding(3) var<storage, read> k_cache: array<vec4<f16>>;  // [kv_heads, capacity, D]
@group(0) @binding(4) var<storage, read> v_cache: array<vec4<f16>>;  // [kv_heads, capacity, D]
@group(0) @binding(5) var<storage, read> sinks: array<f32>;        // [n_heads]
@group(0) @binding(6) var<storage, read_write> out: array<f32>;    // [n_tokens, n_heads, D]

// The queries' hi and lo parts [BQ][LD] until they are in registers, then each block's P.
var<workgroup> ph: array<vec4<f16>, BQ * LD4>;
var<workgroup> pl: array<vec4<f16>, BQ * LD4>;
var<workgroup> ks: array<vec4<f16>, BK * LD4>;    // [BK][LD]: key j, dimension d
var<workgroup> vs: array<vec4<f16>, BK * LD4>;    // [BK][LD]
// st's row stride in floats: D and 4 of padding. A lane reads its row's runs of 4 as vec4s,
// and with 17 vec4s a row the 8 lanes of a quarter warp (4 rows, 2 parts) fall in 8
// different bank groups, where a stride of D put them in 2 (S) or 1 (P V).
const SST: u32 = D + 4u;
const SST4: u32 = SST / 4u;
var<workgroup> st: array<vec4<f32>, N_SG * 16u * SST4>;    // per subgroup [16][SST]: S, then P V
var<workgroup> q_exp: array<f32, BQ>;             // 2^(each query row's shift)

struct Ids {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) n_wg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
}

// A key block's share of one invocation: BK x D / 4 runs of 4, over WG >= 128 invocations.
const KV_FETCH: u32 = 4u;

// Held as the cache's halfs (two registers a run of 4, not four f32): fewer registers while
// the block before computes, and so room for more workgroups on a multiprocessor.
struct KvFetch {
    k: array<vec4<f16>, KV_FETCH>,
    v: array<vec4<f16>, KV_FETCH>,
}

// Keys and values kb ..< kb + nk of kv head kvh, invocation lid's runs (zeros past nk: the
// padding keys' P is 0, and 0 times a stale value could be NaN).
fn fetch_kv(kvh: u32, kb: u32, nk: u32, lid: u32) -> KvFetch {
    var r: KvFetch;
    for (var f = 0u; f < KV_FETCH; f++) {
        let i = lid + f * WG;
        let j = i / (D / 4u);
        if i < BK * D / 4u && j < nk {
            let e = (kvh * params.capacity + (kb + j) % params.capacity) * D + (i % (D / 4u)) * 4u;
            r.k[f] = k_cache[e / 4u];
            r.v[f] = v_cache[e / 4u];
        }
    }
    return r;
}

fn store_kv(r: KvFetch, lid: u32) {
    for (var f = 0u; f < KV_FETCH; f++) {
        let i = lid + f * WG;
        if i < BK * D / 4u {
            let o = (i / (D / 4u)) * LD4 + i % (D / 4u);
            ks[o] = r.k[f];
            vs[o] = r.v[f];
        }
    }
}

// The largest of a value over the lanes of one query row (adjacent lanes).
fn row_max(x: f32) -> f32 {
    var m = x;
    for (var s = 1u; s < LANES; s *= 2u) {
        m = max(m, subgroupShuffleXor(m, s));
    }
    return m;
}

fn row_sum(x: f32) -> f32 {
    var t = x;
    for (var s = 1u; s < LANES; s *= 2u) {
        t += subgroupShuffleXor(t, s);
    }
    return t;
}

// Which of its row's DPL / 4 runs of output dimensions a lane holds as its c4-th: rotated by
// half of them in odd parts, so that the two parts of a row read st in different bank groups
// (with 17 vec4s a row, runs 8 apart share one).
fn dim_run(c4: u32, part: u32) -> u32 {
    return (c4 + (part % 2u) * (DPL / 8u)) % (DPL / 4u);
}

@compute @workgroup_size(WG)
fn attention_prefill_f16(ids: Ids) {
    let lid = ids.lid;
    // Heads along x, query blocks along y with the last block first (attention_prefill_f32
    // says why). The grid has ceil(n_tokens / BQ) rows, so q0 < n_tokens.
    let h = ids.wg_id.x;
    let q0 = (ids.n_wg.y - 1u - ids.wg_id.y) * BQ;
    let nq = min(BQ, step.n_tokens - q0);
    let kvh = h / (params.n_heads / params.n_kv_heads);
    let pos_first = step.pos0 + q0;
    let pos_last = pos_first + nq - 1u;

    // Each query row's shift: the smallest e >= 0 with max |q scale| 2^-e < 2^15.
    if lid < BQ {
        var m = 0.0;
        if lid < nq {
            let base = (q0 + lid) * params.qkv_stride + h * D;
            for (var d = 0u; d < D; d++) {
                m = max(m, abs(qkv[base + d] * params.scale));
            }
        }
        let e = max(i32((bitcast<u32>(m) >> 23u) & 0xffu) - 127 - 14, 0);
        q_exp[lid] = exp2(f32(e));
    }
    workgroupBarrier();
    for (var i = lid; i < BQ * D / 4u; i += WG) {
        let qi = i / (D / 4u);
        let d = (i % (D / 4u)) * 4u;
        var v = vec4<f32>(0.0);
        if qi < nq {
            let b = (q0 + qi) * params.qkv_stride + h * D + d;
            v = vec4<f32>(qkv[b], qkv[b + 1u], qkv[b + 2u], qkv[b + 3u]) * (params.scale / q_exp[qi]);
        }
        let hi = f16_hi(v);
        ph[qi * LD4 + d / 4u] = vec4<f16>(hi);
        pl[qi * LD4 + d / 4u] = vec4<f16>(f16_lo(v, hi));
    }
    workgroupBarrier();
    let r0 = ids.sg_id * 16u;   // the subgroup's first query row
    // Its queries as A fragments (16 rows x 16 dimensions; hi parts, then lo), for every block.
    var qa: array<coop_mat16x16<f16, A>, 8>;
    for (var c = 0u; c < 4u; c++) {
        qa[c] = coopLoadT<coop_mat16x16<f16, A>>(&ph[r0 * LD4 + c * 4u], LD4);
        qa[c + 4u] = coopLoadT<coop_mat16x16<f16, A>>(&pl[r0 * LD4 + c * 4u], LD4);
    }
    workgroupBarrier();

    // This lane's query row (of the subgroup's 16) and its share of keys and dimensions.
    let row = ids.sg_lane / LANES;
    let part = ids.sg_lane % LANES;
    let qi = r0 + row;
    let pos = pos_first + qi;
    let slot = ids.sg_id * 16u * SST4;
    var m_run = sinks[h];
    var l_run = 1.0;
    var o: array<f32, MAX_DPL>;

    let kb0 = first_visible(pos_first);
    var next = fetch_kv(kvh, kb0, min(BK, pos_last + 1u - kb0), lid);
    for (var kb = kb0; kb <= pos_last; kb += BK) {
        let nk = min(BK, pos_last + 1u - kb);
        store_kv(next, lid);
        workgroupBarrier();
        if kb + BK <= pos_last {
            next = fetch_kv(kvh, kb + BK, min(BK, pos_last + 1u - (kb + BK)), lid);
        }

        // S for the subgroup's rows, 16 keys a fragment (ks holds K^T column by column).
        for (var kc = 0u; kc < BK / 16u; kc++) {
            var s_hi: coop_mat16x16<f32, C>;
            var s_lo: coop_mat16x16<f32, C>;
            for (var c = 0u; c < 4u; c++) {
                let b = coopLoad<coop_mat16x16<f16, B>>(&ks[kc * 16u * LD4 + c * 4u], LD4);
                s_hi = coopMultiplyAdd(qa[c], b, s_hi);
                s_lo = coopMultiplyAdd(qa[c + 4u], b, s_lo);
            }
            coopStoreT(s_hi + s_lo * (1.0 / F16_LO_SCALE), &st[slot + kc * 4u], SST4);
        }
        workgroupBarrier();

        // The lane's keys part * KPL ..: masked where in the future, outside the window or
        // past the block; the row's new max and sum; P as two f16 parts.
        var s: array<f32, MAX_KPL>;
        var bm = MASKED;
        for (var c4 = 0u; c4 < KPL / 4u; c4++) {
            let s4 = st[slot + row * SST4 + (part * KPL) / 4u + c4] * q_exp[qi];
            for (var c = 0u; c < 4u; c++) {
                let j = part * KPL + 4u * c4 + c;
                let key = kb + j;
                let visible = qi < nq && j < nk && key <= pos && key >= first_visible(pos);
                s[4u * c4 + c] = select(MASKED, s4[c], visible);
                bm = max(bm, s[4u * c4 + c]);
            }
        }
        let m_new = max(m_run, row_max(bm));
        let corr = exp(m_run - m_new);
        var sum = 0.0;
        for (var c4 = 0u; c4 < KPL / 4u; c4++) {
            var p: vec4<f32>;
            for (var c = 0u; c < 4u; c++) {
                p[c] = exp(s[4u * c4 + c] - m_new);
            }
            sum += p.x + p.y + p.z + p.w;
            let hi = f16_hi(p);
            let at = qi * LD4 + (part * KPL) / 4u + c4;
            ph[at] = vec4<f16>(hi);
            pl[at] = vec4<f16>(f16_lo(p, hi));
        }
        l_run = l_run * corr + row_sum(sum);
        m_run = m_new;
        workgroupBarrier();

        // P V for the subgroup's rows, 16 dimensions a fragment, into st.
        var pa: array<coop_mat16x16<f16, A>, 4>;
        for (var kc = 0u; kc < BK / 16u; kc++) {
            pa[kc] = coopLoadT<coop_mat16x16<f16, A>>(&ph[r0 * LD4 + kc * 4u], LD4);
            pa[kc + 2u] = coopLoadT<coop_mat16x16<f16, A>>(&pl[r0 * LD4 + kc * 4u], LD4);
        }
        for (var dc = 0u; dc < D / 16u; dc++) {
            var o_hi: coop_mat16x16<f32, C>;
            var o_lo: coop_mat16x16<f32, C>;
            for (var kc = 0u; kc < BK / 16u; kc++) {
                let b = coopLoadT<coop_mat16x16<f16, B>>(&vs[kc * 16u * LD4 + dc * 4u], LD4);
                o_hi = coopMultiplyAdd(pa[kc], b, o_hi);
                o_lo = coopMultiplyAdd(pa[kc + 2u], b, o_lo);
            }
            coopStoreT(o_hi + o_lo * (1.0 / F16_LO_SCALE), &st[slot + dc * 4u], SST4);
        }
        workgroupBarrier();
        for (var c4 = 0u; c4 < DPL / 4u; c4++) {
            let pv = st[slot + row * SST4 + (part * DPL) / 4u + dim_run(c4, part)];
            for (var c = 0u; c < 4u; c++) {
                o[4u * c4 + c] = o[4u * c4 + c] * corr + pv[c];
            }
        }
        // The next block's first barrier keeps st and the tiles until every lane is done.
    }
    if qi < nq {
        let base = ((q0 + qi) * params.n_heads + h) * D + part * DPL;
        for (var c4 = 0u; c4 < DPL / 4u; c4++) {
            for (var c = 0u; c < 4u; c++) {
                out[base + 4u * dim_run(c4, part) + c] = o[4u * c4 + c] / l_run;
            }
        }
    }
}
