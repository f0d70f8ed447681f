// attention_prefill_f32: causal (and sliding-window) attention with sinks for the tokens of one
// prefill step, over the KV cache (which already holds this step's keys). Flash-attention
// style: a workgroup takes BQ queries of one head and walks the visible keys in blocks of BK,
// keeping a running max m, sum l and output per query. The running max starts at the sink
// logit and the sum at exp(sink - m) = 1, so the sink joins the denominator and a block with
// every key masked changes nothing. Masked logits are a large finite negative, never -inf.
//
// Register tiles, so that each value read from workgroup memory feeds several multiply-adds
// (the f32 cost of long prompts is here: BENCHMARKS.md, "Prefill at depth"): for the scores
// an invocation holds 2 queries x 4 keys (keys sk, sk + 8, ..., so that the 8 keys one vec4
// load phase reads sit in distinct banks: rows are LDQ floats apart), for the outputs 4
// queries x 4 dimensions. Each row's block max and sum meet in workgroup memory (8 partial
// values a row, read in a fixed order: the same result in every invocation that reads them).

//!include attention
//!include kv_cache

const WG: u32 = 128u;
const BQ: u32 = 32u;
const BK: u32 = 32u;
// Head dimensions the tiles hold (the rest zeros), and the row strides in floats.
const D_MAX: u32 = 64u;
const LDQ: u32 = 68u;
const LDP: u32 = 36u;
const MASKED: f32 = -1.0e30;

override HEAD_DIM: u32 = 64u;

// Bindings 0-2 (params, step, qkv) are attention.wgsl's.
const K_CACHE_BINDING: u32 = 3u;  // [kv_heads, capacity, D]
const V_CACHE_BINDING: u32 = 4u;  // [kv_heads, capacity, D]
@group(0) @binding(5) var<storage, read> sinks: array<f32>;        // [n_heads]
@group(0) @binding(6) var<storage, read_write> out: array<f32>;    // [n_tokens, n_heads, D]

var<workgroup> qs: array<vec4<f32>, BQ * LDQ / 4u>;   // [BQ][LDQ]: the queries, scaled
var<workgroup> ks: array<vec4<f32>, BK * LDQ / 4u>;   // [BK][LDQ]
var<workgroup> vs: array<vec4<f32>, BK * D_MAX / 4u>; // [BK][D_MAX]
var<workgroup> ps: array<vec4<f32>, BQ * LDP / 4u>;   // [BQ][LDP]: the block's exp(s - m)
var<workgroup> red_m: array<f32, BQ * 8u>;            // [BQ][8]: partial row maxima
var<workgroup> red_l: array<f32, BQ * 8u>;            // [BQ][8]: partial row sums
var<workgroup> row_m: array<f32, BQ>;
var<workgroup> row_l: array<f32, BQ>;
var<workgroup> row_corr: array<f32, BQ>;

// A key block's share of one invocation: BK x D_MAX / 4 runs of 4, over WG invocations.
const KV_FETCH: u32 = BK * D_MAX / 4u / WG;

struct KvFetch {
    k: array<vec4<f32>, KV_FETCH>,
    v: array<vec4<f32>, KV_FETCH>,
}

// Keys and values kb ..< kb + nk of kv head kvh, invocation lid's runs (zeros past nk and
// HEAD_DIM).
fn fetch_kv(kvh: u32, kb: u32, nk: u32, lid: u32) -> KvFetch {
    var r: KvFetch;
    for (var f = 0u; f < KV_FETCH; f++) {
        let i = lid + f * WG;
        let j = i / (D_MAX / 4u);
        let d = (i % (D_MAX / 4u)) * 4u;
        if j < nk && d < HEAD_DIM {
            let e = (kvh * params.capacity + (kb + j) % params.capacity) * HEAD_DIM + d;
            r.k[f] = vec4<f32>(load_k(e), 0.0, 0.0);
            r.v[f] = vec4<f32>(load_v(e), 0.0, 0.0);
            if d + 2u < HEAD_DIM {
                r.k[f] = vec4<f32>(r.k[f].xy, load_k(e + 2u));
                r.v[f] = vec4<f32>(r.v[f].xy, load_v(e + 2u));
            }
        }
    }
    return r;
}

// Row qi's new running max: the old one and the block's 8 partial maxima, in order.
fn block_max(qi: u32) -> f32 {
    var m = row_m[qi];
    for (var t = 0u; t < 8u; t++) {
        m = max(m, red_m[qi * 8u + t]);
    }
    return m;
}

@compute @workgroup_size(WG)
fn attention_prefill_f32(@builtin(local_invocation_index) lid: u32,
                         @builtin(workgroup_id) wg_id: vec3<u32>,
                         @builtin(num_workgroups) n_wg: vec3<u32>) {
    // Heads along x and query blocks along y, the last block first: workgroups start in
    // order, x fastest, so every head's longest causal walk starts before any shorter one and
    // the dispatch ends on the shortest, not on a late long one.
    let h = wg_id.x;
    let q0 = (n_wg.y - 1u - wg_id.y) * BQ;   // first query (token index within the step)
    if q0 >= step.n_tokens {
        return;
    }
    let nq = min(BQ, step.n_tokens - q0);
    let kvh = h / (params.n_heads / params.n_kv_heads);
    let pos_first = step.pos0 + q0;
    let pos_last = pos_first + nq - 1u;
    let d4n = (HEAD_DIM + 3u) / 4u;

    for (var i = lid; i < BQ * D_MAX / 4u; i += WG) {
        let qi = i / (D_MAX / 4u);
        let d4 = i % (D_MAX / 4u);
        var v = vec4<f32>(0.0);
        if qi < nq {
            for (var c = 0u; c < 4u; c++) {
                let d = 4u * d4 + c;
                if d < HEAD_DIM {
                    v[c] = qkv[(q0 + qi) * params.qkv_stride + h * HEAD_DIM + d] * params.scale;
                }
            }
        }
        qs[qi * (LDQ / 4u) + d4] = v;
    }
    if lid < BQ {
        row_m[lid] = sinks[h];
        row_l[lid] = 1.0;
    }
    // Score tile: queries 2 sq, 2 sq + 1 by keys sk + 8 c. Output tile: queries 4 oq + r by
    // dimensions 4 od ..< 4 od + 4.
    let sq = lid / 8u;
    let sk = lid % 8u;
    let oq = lid / 16u;
    let od = lid % 16u;
    var o: array<vec4<f32>, 4>;
    workgroupBarrier();

    // Each block's keys and values are read from the cache into registers while the block
    // before it computes, and stored to workgroup memory at the top of its own iteration.
    let kb0 = first_visible(pos_first);
    var next = fetch_kv(kvh, kb0, min(BK, pos_last + 1u - kb0), lid);
    for (var kb = kb0; kb <= pos_last; kb += BK) {
        let nk = min(BK, pos_last + 1u - kb);
        for (var f = 0u; f < KV_FETCH; f++) {
            let i = lid + f * WG;
            let j = i / (D_MAX / 4u);
            let d4 = i % (D_MAX / 4u);
            ks[j * (LDQ / 4u) + d4] = next.k[f];
            vs[j * (D_MAX / 4u) + d4] = next.v[f];
        }
        workgroupBarrier();
        if kb + BK <= pos_last {
            next = fetch_kv(kvh, kb + BK, min(BK, pos_last + 1u - (kb + BK)), lid);
        }

        // Scores, masked where the key is in the future or outside the window.
        var sc: array<vec4<f32>, 2>;
        for (var d4 = 0u; d4 < d4n; d4++) {
            let qa = qs[(2u * sq) * (LDQ / 4u) + d4];
            let qb = qs[(2u * sq + 1u) * (LDQ / 4u) + d4];
            for (var c = 0u; c < 4u; c++) {
                let kk = ks[(sk + 8u * c) * (LDQ / 4u) + d4];
                sc[0][c] += dot(qa, kk);
                sc[1][c] += dot(qb, kk);
            }
        }
        for (var r = 0u; r < 2u; r++) {
            let qi = 2u * sq + r;
            let pos = pos_first + qi;
            var m = MASKED;
            for (var c = 0u; c < 4u; c++) {
                let j = sk + 8u * c;
                let key = kb + j;
                let visible = qi < nq && j < nk && key <= pos && key >= first_visible(pos);
                sc[r][c] = select(MASKED, sc[r][c], visible);
                m = max(m, sc[r][c]);
            }
            red_m[qi * 8u + sk] = m;
        }
        workgroupBarrier();
        for (var r = 0u; r < 2u; r++) {
            let qi = 2u * sq + r;
            let m = block_max(qi);
            var sum = 0.0;
            for (var c = 0u; c < 4u; c++) {
                let p = exp(sc[r][c] - m);
                let j = sk + 8u * c;
                ps[qi * (LDP / 4u) + j / 4u][j % 4u] = p;
                sum += p;
            }
            red_l[qi * 8u + sk] = sum;
        }
        workgroupBarrier();
        // Each row's running state, by one invocation (block_max again, before row_m moves).
        if lid < BQ {
            let m = block_max(lid);
            var sum = 0.0;
            for (var t = 0u; t < 8u; t++) {
                sum += red_l[lid * 8u + t];
            }
            let corr = exp(row_m[lid] - m);
            row_corr[lid] = corr;
            row_l[lid] = row_l[lid] * corr + sum;
            row_m[lid] = m;
        }
        workgroupBarrier();
        for (var r = 0u; r < 4u; r++) {
            o[r] *= row_corr[4u * oq + r];
        }
        // Four keys a step, their weights one vec4 load a row. Keys past nk have weight 0
        // (masked) and zero values, so the last step's padding adds nothing.
        for (var j4 = 0u; j4 < (nk + 3u) / 4u; j4++) {
            let v0 = vs[(4u * j4) * (D_MAX / 4u) + od];
            let v1 = vs[(4u * j4 + 1u) * (D_MAX / 4u) + od];
            let v2 = vs[(4u * j4 + 2u) * (D_MAX / 4u) + od];
            let v3 = vs[(4u * j4 + 3u) * (D_MAX / 4u) + od];
            for (var r = 0u; r < 4u; r++) {
                let p = ps[(4u * oq + r) * (LDP / 4u) + j4];
                o[r] += p.x * v0;
                o[r] += p.y * v1;
                o[r] += p.z * v2;
                o[r] += p.w * v3;
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let qi = 4u * oq + r;
        if qi < nq {
            for (var c = 0u; c < 4u; c++) {
                let d = 4u * od + c;
                if d < HEAD_DIM {
                    out[((q0 + qi) * params.n_heads + h) * HEAD_DIM + d] = o[r][c] / row_l[qi];
                }
            }
        }
    }
}
