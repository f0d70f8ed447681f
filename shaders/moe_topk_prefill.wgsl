// moe_topk_prefill: the router's top-k and softmax weights (topk.wgsl) for each token of a
// prefill step, a workgroup a token (entry t*k + j is token t's j-th choice), for
// moe_route_prefill to group by expert. Workgroup (x, y) takes token y * GRID_X + x.

//!include topk

struct Params {
    n_tokens: u32,
    n_experts: u32,
    k: u32,
    _pad0: u32,
}

// Tokens per grid row (at most 65,535 workgroups a dimension).
const GRID_X: u32 = 32768u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> router_logits: array<f32>;  // [n_tokens, n_experts]
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;  // [n_tokens * k]
@group(0) @binding(3) var<storage, read_write> experts: array<u32>;  // [n_tokens * k]

@compute @workgroup_size(TOPK_WG)
fn moe_topk_prefill(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wg_id: vec3<u32>) {
    let t = wg_id.y * GRID_X + wg_id.x;
    if t >= params.n_tokens {
        return;
    }
    let k = params.k;
    var logit = 0.0;
    if lid < params.n_experts {
        logit = router_logits[t * params.n_experts + lid];
    }
    topk_rank(lid, params.n_experts, k, logit);
    if lid < k {
        experts[t * k + lid] = topk_i[lid];
        weights[t * k + lid] = topk_weight(lid, k);
    }
}
