// router_prefill_f32_bf16w: the MoE router's logits for a prefill step, in f32 as the decode
// router computes them: logits[t, e] = W[e] . xn[t] + bias[e], bf16 W [n_experts, hidden],
// xn the step's normalised tokens. The matrix is small (gpt-oss-20b: 32 x 2,880, 184 KB) and
// every token needs all of it, so a workgroup takes T tokens and every row: a group (a
// subgroup, or 32 invocations on the portable path) takes R rows at a time, its lanes striding
// over 8-element chunks of K, each weight chunk loaded once for the T tokens and each token
// chunk once for the R rows. A tile kernel (the matmuls' 64 x 128) would give a 512-token step
// 8 workgroups walking K in series: ~95 us a layer on the H200 against this one's few.
// A token's sums do not depend on which workgroup or step holds it: each lane adds its own
// chunks in order, then group_sum: the same logits whatever the step size.

//!include bf16
//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;
// Tokens per workgroup and rows a group takes at once: T R accumulators a lane.
const T: u32 = 8u;
const R: u32 = 4u;

struct Params {
    n_tokens: u32,
    n_experts: u32,
    k8: u32,          // hidden / 8
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;       // [n_experts, hidden/8] bf16 x 8
@group(0) @binding(2) var<storage, read> xn: array<vec4<f32>>;      // [n_tokens, hidden/4]
@group(0) @binding(3) var<storage, read> bias: array<f32>;          // [n_experts]
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;  // [n_tokens, n_experts]

fn bf16x4(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

@compute @workgroup_size(WG)
fn router_prefill_f32_bf16w(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>) {
    let t0 = wg_id.x * T;
    if t0 >= params.n_tokens {
        return;
    }
    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);
    let k4 = 2u * params.k8;
    // Every group runs every pass (group_sum may hold barriers): rows past the end load the
    // last row again, tokens past the end the last token, and neither is written.
    let passes = (params.n_experts + ng * R - 1u) / (ng * R);
    for (var p = 0u; p < passes; p++) {
        let e0 = (p * ng + g) * R;
        var acc = array<f32, T * R>();
        for (var c = lane; c < params.k8; c += lanes) {
            var q: array<vec4<u32>, R>;
            for (var r = 0u; r < R; r++) {
                q[r] = w[min(e0 + r, params.n_experts - 1u) * params.k8 + c];
            }
            for (var t = 0u; t < T; t++) {
                let x0 = min(t0 + t, params.n_tokens - 1u) * k4 + 2u * c;
                let xa = xn[x0];
                let xb = xn[x0 + 1u];
                for (var r = 0u; r < R; r++) {
                    acc[t * R + r] += dot(xa, bf16x4(q[r].xy)) + dot(xb, bf16x4(q[r].zw));
                }
            }
        }
        for (var t = 0u; t < T; t++) {
            for (var r = 0u; r < R; r++) {
                let total = group_sum(acc[t * R + r], ids);
                let e = e0 + r;
                if lane == 0u && t0 + t < params.n_tokens && e < params.n_experts {
                    logits[(t0 + t) * params.n_experts + e] = total + bias[e];
                }
            }
        }
    }
}
