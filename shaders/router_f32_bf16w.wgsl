// router_f32_bf16w: the MoE router for one token: the MLP RMSNorm of x (written out as xn,
// the expert kernels' input, by workgroup 0), the logits W xn + b (bf16 W [n_experts,
// hidden]) into `logits`, and the top k with their softmax weights into `route` (topk.wgsl)
// by the workgroup that finishes last: each workgroup stores its logits atomically, then
// counts itself in on the counter after them; the one that brings the count to the number of
// workgroups reads every logit back atomically, ranks them and resets the counter. (Plain
// stores are not seen across workgroups inside a dispatch on the H200, atomics are:
// BENCHMARKS.md, the grid-barrier probe.) With TOPK = false the logits stop there and
// router_topk_f32 ranks them in a dispatch of its own (the A/B). The matrix is
// spread over workgroups of ROWS_PER_WG rows, so that many multiprocessors read it at once
// (one workgroup walking gpt-oss-120b's 737 KB took 34 us a layer on the H200); each
// workgroup normalises x itself (hidden floats from L2, cheaper than another dispatch) and
// stages x * gain in workgroup memory; a group (a subgroup, or 32 invocations on the portable
// path) takes a row at a time, its lanes striding over 8-element chunks of the row with U
// chunks' loads issued before any arithmetic: at gpt-oss's widths one memory round trip.

//!include bf16
//!include reduce
//!include topk

override WG: u32 = 128u;
override REDUCE_SIZE: u32 = WG;
// Rows (experts) per workgroup.
override ROWS_PER_WG: u32 = 4u;
// hidden: the normalised x (times the gain) staged for the logits.
override XG_LEN: u32 = 2880u;
const U: u32 = 12u;              // chunks per lane whose loads are in flight together
// The last workgroup ranks the logits (n_experts at most WG).
override TOPK: bool = true;

struct Params {
    n_experts: u32,
    k8: u32,          // hidden / 8
    k: u32,           // experts per token
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;        // [n_experts, hidden/8] bf16 x 8
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;        // [hidden/4]
@group(0) @binding(3) var<storage, read> gain: array<vec4<f32>>;     // [hidden/4]
@group(0) @binding(4) var<storage, read> bias: array<f32>;           // [n_experts]
@group(0) @binding(5) var<storage, read_write> xn: array<vec4<f32>>; // [hidden/4]
// [n_experts + 1]: the logits' f32 bits, then the count of workgroups done (0 between
// dispatches).
@group(0) @binding(6) var<storage, read_write> logits: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> route: array<u32>;    // [2 k]: ids, weights

var<workgroup> xg: array<vec4<f32>, XG_LEN / 4u>;
var<workgroup> is_last: bool;

fn bf16x4(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

@compute @workgroup_size(WG)
fn router_f32_bf16w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let lid = ids.lid;
    var ss = 0.0;
    for (var c = lid; c < 2u * params.k8; c += WG) {
        let v = x[c];
        ss += dot(v, v);
    }
    let scale = inverseSqrt(workgroup_sum(ss, ids) / f32(params.k8 * 8u) + params.eps);
    for (var c = lid; c < 2u * params.k8; c += WG) {
        let v = x[c] * gain[c];
        xg[c] = v;
        if wg_id.x == 0u {
            xn[c] = v * scale;
        }
    }
    workgroupBarrier();

    // This workgroup's rows, each group one at a time; `scale`, the norm's, multiplies each
    // row's sum once (as in matvec_f32_bf16w). Every group runs every pass (group_sum may
    // hold barriers): a group past the workgroup's rows loads the last row again and does not
    // write.
    let g = group_id(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let r0 = wg_id.x * ROWS_PER_WG;
    let r_end = min(r0 + ROWS_PER_WG, params.n_experts);
    for (var p = 0u; p < (ROWS_PER_WG + ng - 1u) / ng; p++) {
        let r = r0 + p * ng + g;
        let row = min(r, r_end - 1u);
        var acc = 0.0;
        for (var c0 = group_lane(ids); c0 < params.k8; c0 += U * lanes) {
            // Chunks past the row's end load chunk c0 again and are not added.
            var q: array<vec4<u32>, U>;
            for (var u = 0u; u < U; u++) {
                let c = select(c0, c0 + u * lanes, c0 + u * lanes < params.k8);
                q[u] = w[row * params.k8 + c];
            }
            for (var u = 0u; u < U; u++) {
                let c = c0 + u * lanes;
                if c < params.k8 {
                    acc += dot(xg[2u * c], bf16x4(q[u].xy)) + dot(xg[2u * c + 1u], bf16x4(q[u].zw));
                }
            }
        }
        let total = group_sum(acc, ids);
        if group_lane(ids) == 0u && r < r_end {
            atomicStore(&logits[row], bitcast<u32>(total * scale + bias[row]));
        }
    }
    if !TOPK {
        return;
    }

    storageBarrier();
    workgroupBarrier();
    let n_wg = (params.n_experts + ROWS_PER_WG - 1u) / ROWS_PER_WG;
    if lid == 0u {
        is_last = atomicAdd(&logits[params.n_experts], 1u) == n_wg - 1u;
    }
    if !workgroupUniformLoad(&is_last) {
        return;
    }
    var logit = 0.0;
    if lid < params.n_experts {
        logit = bitcast<f32>(atomicLoad(&logits[lid]));
    }
    topk_rank(lid, params.n_experts, params.k, logit);
    if lid < params.k {
        route[lid] = topk_i[lid];
        route[params.k + lid] = bitcast<u32>(topk_weight(lid, params.k));
    }
    if lid == 0u {
        atomicStore(&logits[params.n_experts], 0u);
    }
}
