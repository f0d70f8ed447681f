// router_f32_bf16w: the MoE router of one token in one dispatch: the MLP RMSNorm of x (written
// out as xn, the expert kernels' input), the logits W xn + b (bf16 W [n_experts, hidden]) into
// workgroup memory, their top k (ties to the lowest expert) and the softmax over those k:
// route = [ids[k], weights[k] (f32 bits)]. One workgroup, since the top-k needs every logit and
// the matrix is small (32 to 128 rows): x * gain is staged in workgroup memory, then each
// group (a subgroup, or 32 invocations on the portable path) takes a row at a time, its lanes
// striding over 8-element chunks of the row with U chunks' loads issued before any
// arithmetic: at gpt-oss's widths one memory round trip per row. The top-k then ranks every
// expert against all the others at once.

//!include bf16
//!include reduce

// Invocations: 512 where the device allows (a group per row, 16 rows at once), else 256.
override WG: u32 = 512u;
override REDUCE_SIZE: u32 = WG;
// hidden: the normalised x (times the gain) staged for the logits.
override XG_LEN: u32 = 2880u;
const U: u32 = 12u;              // chunks per lane whose loads are in flight together
const NEG_HUGE: f32 = -3.0e38;
const MAX_EXPERTS: u32 = 256u;

struct Params {
    n_experts: u32,   // at most MAX_EXPERTS
    k8: u32,          // hidden / 8
    k: u32,           // experts per token, at most 32
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;        // [n_experts, hidden/8] bf16 x 8
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;        // [hidden/4]
@group(0) @binding(3) var<storage, read> gain: array<vec4<f32>>;     // [hidden/4]
@group(0) @binding(4) var<storage, read> bias: array<f32>;           // [n_experts]
@group(0) @binding(5) var<storage, read_write> xn: array<vec4<f32>>; // [hidden/4]
@group(0) @binding(6) var<storage, read_write> route: array<u32>;    // [2 k]

var<workgroup> logits: array<f32, MAX_EXPERTS>;
var<workgroup> xg: array<vec4<f32>, XG_LEN / 4u>;
var<workgroup> chosen_v: array<f32, 32>;
var<workgroup> chosen_i: array<u32, 32>;

// A logit in the top-k's order: NaN as the lowest.
fn ordered(v: f32) -> f32 {
    return select(NEG_HUGE, v, v == v);
}

fn bf16x4(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

// logits[row] for every row, each group one row at a time, its lanes' U chunks of the row in
// flight together (gpt-oss's 360 chunks: all of them); xg is x * gain, and `scale`, the
// norm's, multiplies each row's sum once (as in matvec_f32_bf16w).
fn router_logits(ids: ReduceIds, scale: f32) {
    let g = group_id(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let last = params.n_experts - 1u;
    for (var r0 = 0u; r0 < params.n_experts; r0 += ng) {
        let row = min(r0 + g, last);
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
        if group_lane(ids) == 0u && r0 + g < params.n_experts {
            logits[row] = total * scale + bias[row];
        }
    }
}

@compute @workgroup_size(WG)
fn router_f32_bf16w(ids: ReduceIds) {
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
        xn[c] = v * scale;
    }
    workgroupBarrier();
    router_logits(ids, scale);
    workgroupBarrier();

    // Top k by rank: expert i's rank is the number of experts ahead of it (a larger logit, or
    // an equal one at a lower index), a total order once NaN reads as -huge; the experts of
    // rank below k write themselves to their places. One barrier instead of k rounds of a
    // tree.
    if lid < params.n_experts {
        let v = ordered(logits[lid]);
        var rank = 0u;
        for (var j = 0u; j < params.n_experts; j++) {
            let o = ordered(logits[j]);
            rank += u32(o > v || (o == v && j < lid));
        }
        if rank < params.k {
            chosen_v[rank] = v;
            chosen_i[rank] = lid;
        }
    }
    workgroupBarrier();
    if lid == 0u {
        let m = chosen_v[0];
        var sum = 0.0;
        for (var j = 0u; j < params.k; j++) {
            sum += exp(chosen_v[j] - m);
        }
        for (var j = 0u; j < params.k; j++) {
            route[j] = chosen_i[j];
            route[params.k + j] = bitcast<u32>(exp(chosen_v[j] - m) / sum);
        }
    }
}
