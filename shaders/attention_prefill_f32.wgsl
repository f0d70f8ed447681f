// attention_prefill_f32: causal (and sliding-window) attention with sinks for the tokens of one
// prefill step, over the KV cache (which already holds this step's keys). Flash-attention
// style: a workgroup takes BQ queries of one head and walks the visible keys in blocks of BK,
// keeping a running max m, sum l and output per query. The running max starts at the sink
// logit and the sum at exp(sink - m) = 1, so the sink joins the denominator and a block with
// every key masked changes nothing. Masked logits are a large finite negative, never -inf.

//!include attention
//!include kv_cache

const WG: u32 = 256u;
const BQ: u32 = 16u;
const BK: u32 = 32u;
const MASKED: f32 = -1.0e30;

override HEAD_DIM: u32 = 64u;

// Bindings 0-2 (params, step, qkv) are attention.wgsl's.
const K_CACHE_BINDING: u32 = 3u;  // [kv_heads, capacity, D]
const V_CACHE_BINDING: u32 = 4u;  // [kv_heads, capacity, D]
@group(0) @binding(5) var<storage, read> sinks: array<f32>;        // [n_heads]
@group(0) @binding(6) var<storage, read_write> out: array<f32>;    // [n_tokens, n_heads, D]

var<workgroup> qs: array<f32, BQ * HEAD_DIM>;
var<workgroup> ks: array<f32, BK * HEAD_DIM>;
var<workgroup> vs: array<f32, BK * HEAD_DIM>;
var<workgroup> s: array<f32, BQ * BK>;
var<workgroup> row_m: array<f32, BQ>;
var<workgroup> row_l: array<f32, BQ>;
var<workgroup> row_corr: array<f32, BQ>;
var<workgroup> os: array<f32, BQ * HEAD_DIM>;

@compute @workgroup_size(WG)
fn attention_prefill_f32(@builtin(local_invocation_index) lid: u32,
                         @builtin(workgroup_id) wg_id: vec3<u32>) {
    let q0 = wg_id.x * BQ;          // first query (token index within the step)
    let h = wg_id.y;
    if q0 >= step.n_tokens {
        return;
    }
    let nq = min(BQ, step.n_tokens - q0);
    let kvh = h / (params.n_heads / params.n_kv_heads);
    let pos_first = step.pos0 + q0;
    let pos_last = pos_first + nq - 1u;

    for (var i = lid; i < BQ * HEAD_DIM; i += WG) {
        let qi = i / HEAD_DIM;
        var v = 0.0;
        if qi < nq {
            v = qkv[(q0 + qi) * params.qkv_stride + h * HEAD_DIM + i % HEAD_DIM] * params.scale;
        }
        qs[i] = v;
        os[i] = 0.0;
    }
    if lid < BQ {
        row_m[lid] = sinks[h];
        row_l[lid] = 1.0;
    }
    workgroupBarrier();

    let k_lo = first_visible(pos_first);
    for (var kb = k_lo; kb <= pos_last; kb += BK) {
        let nk = min(BK, pos_last + 1u - kb);
        for (var i = lid; i < BK * HEAD_DIM / 2u; i += WG) {
            let j = (2u * i) / HEAD_DIM;
            let d = (2u * i) % HEAD_DIM;
            var kv = vec2<f32>(0.0);
            var vv = vec2<f32>(0.0);
            if j < nk {
                let e = (kvh * params.capacity + (kb + j) % params.capacity) * HEAD_DIM + d;
                kv = load_k(e);
                vv = load_v(e);
            }
            ks[j * HEAD_DIM + d] = kv.x;
            ks[j * HEAD_DIM + d + 1u] = kv.y;
            vs[j * HEAD_DIM + d] = vv.x;
            vs[j * HEAD_DIM + d + 1u] = vv.y;
        }
        workgroupBarrier();
        // Scores, masked where the key is in the future or outside the window.
        for (var i = lid; i < BQ * BK; i += WG) {
            let qi = i / BK;
            let j = i % BK;
            let pos = pos_first + qi;
            let key = kb + j;
            var v = MASKED;
            if qi < nq && j < nk && key <= pos && key >= first_visible(pos) {
                var dot = 0.0;
                for (var d = 0u; d < HEAD_DIM; d++) {
                    dot += qs[qi * HEAD_DIM + d] * ks[j * HEAD_DIM + d];
                }
                v = dot;
            }
            s[i] = v;
        }
        workgroupBarrier();
        // Online softmax update, one invocation per query row.
        if lid < BQ {
            var m = row_m[lid];
            for (var j = 0u; j < BK; j++) {
                m = max(m, s[lid * BK + j]);
            }
            var sum = 0.0;
            for (var j = 0u; j < BK; j++) {
                let p = exp(s[lid * BK + j] - m);
                s[lid * BK + j] = p;
                sum += p;
            }
            let corr = exp(row_m[lid] - m);
            row_corr[lid] = corr;
            row_l[lid] = row_l[lid] * corr + sum;
            row_m[lid] = m;
        }
        workgroupBarrier();
        for (var i = lid; i < BQ * HEAD_DIM; i += WG) {
            let qi = i / HEAD_DIM;
            let d = i % HEAD_DIM;
            var acc = os[i] * row_corr[qi];
            for (var j = 0u; j < BK; j++) {
                acc += s[qi * BK + j] * vs[j * HEAD_DIM + d];
            }
            os[i] = acc;
        }
        workgroupBarrier();
    }
    for (var i = lid; i < nq * HEAD_DIM; i += WG) {
        let qi = i / HEAD_DIM;
        out[((q0 + qi) * params.n_heads + h) * HEAD_DIM + i % HEAD_DIM] = os[i] / row_l[qi];
    }
}
