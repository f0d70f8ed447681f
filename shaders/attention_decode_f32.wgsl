// attention_decode_f32: one query position against the KV cache, split-K (flash-decoding), with
// the step's RoPE and cache append folded in. Workgroup (chunk c, head block): GROUP query
// heads of one KV head (all KV_GROUP of them, which share its cache reads, or fewer: the host's
// HeadSplit) against CHUNK positions. q is rotated on load; the current position's k (rotated)
// and v come from qkv, and the KV head's first workgroup of the chunk that holds the current
// position also appends them to the cache (no workgroup uses that slot's cached contents).
// Scores for the GROUP heads go to workgroup memory, then each head's unnormalised softmax
// partial (max m, sum l, output o) is written for attention_combine_f32, which merges the
// chunks and the sink. When one chunk covers every visible position, the workgroup also merges
// its partial with the sink (combine's arithmetic for one chunk) and writes the heads' outputs,
// so the plan leaves the combine out. Sliding layers see positions pos-W+1..pos only.
// Output: partials [chunks, n_heads, D + 2] = (o[0..D], m, l); out [n_heads, D] (one chunk).
// Workgroups at z > 0 only prefetch o_proj's weights into L2 (prefetch.wgsl).

//!include attention
//!include kv_cache
//!include prefetch

const WG: u32 = 256u;
const MAX_GROUP: u32 = 16u;
// V rows per output invocation whose loads are in flight together: with 8 position lanes a
// whole chunk of 128 in one step.
const UNROLL: u32 = 16u;

override CHUNK: u32 = 128u;    // positions per workgroup
override GROUP: u32 = 8u;      // query heads per workgroup (of one KV head)
override KV_GROUP: u32 = 8u;   // query heads per KV head (GROUP divides it)
override HEAD_DIM: u32 = 64u;
// Invocations that share one pair of dims in the output phase.
const LANES_PER_PAIR_MAX: u32 = 64u;

// Bindings 0-2 (params, step, qkv: [qkv_stride], one token) are attention.wgsl's.
const K_CACHE_BINDING: u32 = 3u;  // [kv_heads, capacity, D]
const V_CACHE_BINDING: u32 = 4u;  // [kv_heads, capacity, D]
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;  // [chunks, n_heads, D + 2]
@group(0) @binding(6) var<storage, read> rope: array<vec2<f32>>;      // [positions, D/2] (cos, sin)
@group(0) @binding(7) var<storage, read> sinks: array<f32>;           // [n_heads]
@group(0) @binding(8) var<storage, read_write> out: array<f32>;       // [n_heads, D]
@group(0) @binding(9) var<storage, read> prefetch_src: array<vec4<u32>>;    // the next matvec's weights

// q rows padded by one float, so that the heads' reads of one dim fall in different banks.
const Q_STRIDE_PAD: u32 = 1u;
override Q_STRIDE: u32 = HEAD_DIM + Q_STRIDE_PAD;
var<workgroup> q_s: array<f32, GROUP * Q_STRIDE>;
var<workgroup> k_now: array<f32, HEAD_DIM>;
var<workgroup> v_now: array<f32, HEAD_DIM>;
var<workgroup> scores: array<f32, GROUP * CHUNK>;
var<workgroup> head_max: array<f32, GROUP>;
// One chunk: per head, the sink-merged maximum and denominator.
var<workgroup> head_m: array<f32, GROUP>;
var<workgroup> head_l: array<f32, GROUP>;
var<workgroup> red: array<f32, WG>;
// Per position-lane partial outputs: [WG / (D/2)][GROUP][D].
var<workgroup> o_s: array<f32, WG * 2u * GROUP>;

// The first visible position and the count, for the query at `pos`.
fn visible(pos: u32) -> vec2<u32> {
    let lo = first_visible(pos);
    return vec2<u32>(lo, pos + 1u - lo);
}

@compute @workgroup_size(WG)
fn attention_decode_f32(@builtin(local_invocation_index) lid: u32,
                        @builtin(workgroup_id) wg_id: vec3<u32>,
                        @builtin(num_workgroups) n_wg: vec3<u32>) {
    if wg_id.z > 0u {
        let plane = n_wg.x * n_wg.y;
        let part = (wg_id.z - 1u) * plane + wg_id.y * n_wg.x + wg_id.x;
        let acc = prefetch(part, plane * (n_wg.z - 1u), lid, WG);
        if prefetch_keep(acc, params.keep_reads) {
            out[0] = f32(acc);
        }
        return;
    }
    let chunk = wg_id.x;
    let head0 = wg_id.y * GROUP;
    let kvh = head0 / KV_GROUP;
    let pos = step.pos0 + step.n_tokens - 1u;
    let vis = visible(pos);
    let start = vis.x + chunk * CHUNK;
    if chunk * CHUNK >= vis.y {
        return;
    }
    let count = min(CHUNK, vis.y - chunk * CHUNK);

    // RoPE (half-split pairs d, d + D/2) on q and on the current k; v copied.
    let half = HEAD_DIM / 2u;
    let kbase_now = params.n_heads * HEAD_DIM + kvh * HEAD_DIM;
    let vbase_now = kbase_now + params.n_kv_heads * HEAD_DIM;
    for (var i = lid; i < (GROUP + 1u) * half; i += WG) {
        let h = i / half;
        let d = i % half;
        let cs = rope[pos * half + d];
        var base = (head0 + h) * HEAD_DIM;
        if h == GROUP {
            base = kbase_now;
        }
        let x1 = qkv[base + d];
        let x2 = qkv[base + d + half];
        let r1 = x1 * cs.x - x2 * cs.y;
        let r2 = x2 * cs.x + x1 * cs.y;
        if h < GROUP {
            q_s[h * Q_STRIDE + d] = r1 * params.scale;
            q_s[h * Q_STRIDE + d + half] = r2 * params.scale;
        } else {
            k_now[d] = r1;
            k_now[d + half] = r2;
            v_now[d] = qkv[vbase_now + d];
            v_now[d + half] = qkv[vbase_now + d + half];
        }
    }
    workgroupBarrier();
    // The KV head's first workgroup of the chunk appends (the others read k_now and v_now).
    let holds_pos = pos < start + count;
    if holds_pos && head0 % KV_GROUP == 0u {
        let cbase = (kvh * params.capacity + pos % params.capacity) * HEAD_DIM;
        for (var d = 2u * lid; d < HEAD_DIM; d += 2u * WG) {
            store_k(cbase + d, vec2<f32>(k_now[d], k_now[d + 1u]));
            store_v(cbase + d, vec2<f32>(v_now[d], v_now[d + 1u]));
        }
    }

    // Scores: one invocation per (position, head), the head fastest: the GROUP invocations of
    // a position load the same key row (one memory transaction for them all) and read their
    // own q rows (Q_STRIDE apart: different banks). A scalar accumulator, 8 dims a step with
    // their loads first; the current position's slot is read too (stale) and replaced by
    // k_now.
    for (var i = lid; i < count * GROUP; i += WG) {
        let p = i / GROUP;
        let g = i % GROUP;
        let slot = (start + p) % params.capacity;
        let kbase = (kvh * params.capacity + slot) * HEAD_DIM;
        let is_now = start + p == pos;
        let qb = g * Q_STRIDE;
        var s = 0.0;
        for (var d = 0u; d < HEAD_DIM; d += 8u) {
            var k: array<vec2<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                k[j] = load_k(kbase + d + 2u * j);
            }
            for (var j = 0u; j < 4u; j++) {
                let e = d + 2u * j;
                let kd = select(k[j], vec2<f32>(k_now[e], k_now[e + 1u]), is_now);
                s += q_s[qb + e] * kd.x + q_s[qb + e + 1u] * kd.y;
            }
        }
        scores[g * CHUNK + p] = s;
    }
    workgroupBarrier();

    // Per-head maximum: 32 invocations per head take a strided share, one folds the 32.
    let per_head = min(WG / GROUP, 32u);
    let hg = lid / per_head;
    let ht = lid % per_head;
    var m_part = -3.0e38;
    if hg < GROUP {
        for (var p = ht; p < count; p += per_head) {
            m_part = max(m_part, scores[hg * CHUNK + p]);
        }
    }
    red[lid] = m_part;
    workgroupBarrier();
    if lid < GROUP {
        var m = red[lid * per_head];
        for (var t = 1u; t < per_head; t++) {
            m = max(m, red[lid * per_head + t]);
        }
        head_max[lid] = m;
    }
    workgroupBarrier();
    for (var i = lid; i < GROUP * CHUNK; i += WG) {
        let p = i % CHUNK;
        var e = 0.0;
        if p < count {
            e = exp(scores[i] - head_max[i / CHUNK]);
        }
        scores[i] = e;
    }
    workgroupBarrier();
    // Per-head sum of the weights, the same way (fixed order: deterministic).
    var l_part = 0.0;
    if hg < GROUP {
        for (var p = ht; p < count; p += per_head) {
            l_part += scores[hg * CHUNK + p];
        }
    }
    red[lid] = l_part;

    // Output: invocation (lane, pair) sums positions lane, lane + lanes, ... for dims 2 pair, +1.
    let pairs = HEAD_DIM / 2u;
    let lanes = WG / pairs;
    let pair = lid % pairs;
    let lane = lid / pairs;
    var acc = array<vec2<f32>, MAX_GROUP>();
    // UNROLL positions per step, their V loads issued together before any arithmetic.
    for (var p0 = lane; p0 < count; p0 += UNROLL * lanes) {
        var v: array<vec2<f32>, UNROLL>;
        for (var u = 0u; u < UNROLL; u++) {
            let p = min(p0 + u * lanes, count - 1u);
            v[u] = vec2<f32>(v_now[2u * pair], v_now[2u * pair + 1u]);
            if start + p != pos {
                let slot = (start + p) % params.capacity;
                v[u] = load_v((kvh * params.capacity + slot) * HEAD_DIM + 2u * pair);
            }
        }
        // Head loops run to the constant MAX_GROUP, so that they unroll and acc stays in
        // registers.
        for (var u = 0u; u < UNROLL; u++) {
            let p = p0 + u * lanes;
            if p < count {
                for (var g = 0u; g < MAX_GROUP; g++) {
                    if g < GROUP {
                        acc[g] += scores[g * CHUNK + p] * v[u];
                    }
                }
            }
        }
    }
    for (var g = 0u; g < MAX_GROUP; g++) {
        if g < GROUP {
            let o = (lane * GROUP + g) * HEAD_DIM + 2u * pair;
            o_s[o] = acc[g].x;
            o_s[o + 1u] = acc[g].y;
        }
    }
    workgroupBarrier();

    let stride = HEAD_DIM + 2u;
    let single = vis.y <= CHUNK;
    if lid < GROUP {
        var l = 0.0;
        for (var t = 0u; t < per_head; t++) {
            l += red[lid * per_head + t];
        }
        let base = (chunk * params.n_heads + head0 + lid) * stride;
        let m = head_max[lid];
        partials[base + HEAD_DIM] = m;
        partials[base + HEAD_DIM + 1u] = l;
        if single {
            // attention_combine_f32 over one chunk, the same operations in the same order.
            let sink = sinks[head0 + lid];
            let mm = max(sink, m);
            head_m[lid] = mm;
            head_l[lid] = exp(sink - mm) + l * exp(m - mm);
        }
    }
    workgroupBarrier();

    // Fixed-order sums over lanes: one invocation per (head, dim).
    for (var i = lid; i < GROUP * HEAD_DIM; i += WG) {
        let g = i / HEAD_DIM;
        let d = i % HEAD_DIM;
        var o = 0.0;
        for (var l = 0u; l < lanes; l++) {
            o += o_s[(l * GROUP + g) * HEAD_DIM + d];
        }
        let base = (chunk * params.n_heads + head0 + g) * stride;
        partials[base + d] = o;
        if single {
            var merged = 0.0;
            merged += o * exp(head_max[g] - head_m[g]);
            out[(head0 + g) * HEAD_DIM + d] = merged / head_l[g];
        }
    }
}
