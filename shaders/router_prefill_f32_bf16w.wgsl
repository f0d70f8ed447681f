// router_prefill_f32_bf16w: the MoE router's logits for a prefill step, in f32 as the decode
// router computes them: logits[t, e] = W[e] . xn[t] + bias[e], bf16 W [n_experts, hidden],
// xn the step's normalised tokens. The matrix is small (gpt-oss-20b: 32 x 2,880, 184 KB) and
// every token needs all of it, so a workgroup takes T tokens and every row. K goes in pieces,
// the T tokens' piece staged in workgroup memory; a group (a subgroup, or 32 invocations on
// the portable path) takes R rows at a time, its lanes PER_LANE 8-element chunks of the
// piece each: each weight chunk is loaded once a workgroup, each token chunk once from L2.
// (A tile of the matmuls, 64 x 128, gives a 512-token step 8 workgroups walking K in series:
// ~95 us a layer on the H200. A first version of this kernel, in which every group read the
// tokens from global memory itself, took ~69 us a layer at 2,048 tokens: by my count ~900 KB
// a workgroup through L1, more than it holds.)
// A token's sums do not depend on which workgroup or step holds it: each lane adds its own
// chunks in order, then group_sum: the same logits whatever the step size.

//!include bf16
//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;
// Tokens per workgroup and rows a group takes at once: T R accumulators a lane.
const T: u32 = 8u;
const R: u32 = 4u;
// A lane takes PER_LANE 8-element chunks of each staged piece of K; a piece is PER_LANE
// chunks for each of a group's first MAX_ACTIVE lanes (wider groups leave the rest idle).
const PER_LANE: u32 = 2u;
const MAX_ACTIVE: u32 = 32u;
const PIECE_MAX: u32 = PER_LANE * MAX_ACTIVE;

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

// The piece's tokens: [T][2][PIECE_MAX] vec4, each chunk's first four elements, then its last
// four, so that a group's lanes read consecutive vec4s (no bank conflicts).
var<workgroup> xs: array<vec4<f32>, T * 2u * PIECE_MAX>;

fn bf16x4(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

@compute @workgroup_size(WG)
fn router_prefill_f32_bf16w(ids: ReduceIds,
                            @builtin(workgroup_id) wg_id: vec3<u32>,
                            @builtin(num_workgroups) n_wg: vec3<u32>) {
    // The host's grid may be 2-D (Gpu::grid); workgroups past the tokens have nothing to do.
    let t0 = (wg_id.x + wg_id.y * n_wg.x) * T;
    if t0 >= params.n_tokens {
        return;
    }
    let g = group_id(ids);
    let lane = group_lane(ids);
    let ng = n_groups(ids);
    let n_active = min(group_lanes(ids), MAX_ACTIVE);
    let piece = n_active * PER_LANE;
    let k4 = 2u * params.k8;
    let pieces = (params.k8 + piece - 1u) / piece;
    // Every group runs every pass (group_sum may hold barriers): rows past the end load the
    // last row again and are not written; tokens past the end are staged as zeros.
    let passes = (params.n_experts + ng * R - 1u) / (ng * R);
    for (var p = 0u; p < passes; p++) {
        let e0 = (p * ng + g) * R;
        var acc = array<f32, T * R>();
        for (var pc = 0u; pc < pieces; pc++) {
            let c0 = pc * piece;
            // This lane's weight chunks of the piece, loaded before the barriers that stage
            // the tokens' piece, so that both loads are in flight together.
            var q: array<vec4<u32>, PER_LANE * R>;
            if lane < n_active {
                for (var j = 0u; j < PER_LANE; j++) {
                    let gc = min(c0 + lane + j * n_active, params.k8 - 1u);
                    for (var r = 0u; r < R; r++) {
                        q[j * R + r] = w[min(e0 + r, params.n_experts - 1u) * params.k8 + gc];
                    }
                }
            }
            workgroupBarrier();
            for (var i = ids.lid; i < T * 2u * piece; i += WG) {
                let t = i / (2u * piece);
                let v = i % (2u * piece);
                let kk = 2u * c0 + v;
                var x = vec4<f32>(0.0);
                if t0 + t < params.n_tokens && kk < k4 {
                    x = xn[(t0 + t) * k4 + kk];
                }
                xs[(t * 2u + v % 2u) * PIECE_MAX + v / 2u] = x;
            }
            workgroupBarrier();
            if lane < n_active {
                for (var j = 0u; j < PER_LANE; j++) {
                    let c = lane + j * n_active;
                    if c0 + c < params.k8 {
                        for (var r = 0u; r < R; r++) {
                            let qa = bf16x4(q[j * R + r].xy);
                            let qb = bf16x4(q[j * R + r].zw);
                            for (var t = 0u; t < T; t++) {
                                let xa = xs[t * 2u * PIECE_MAX + c];
                                let xb = xs[(t * 2u + 1u) * PIECE_MAX + c];
                                acc[t * R + r] += dot(xa, qa) + dot(xb, qb);
                            }
                        }
                    }
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
