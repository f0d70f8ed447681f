// moe_topk_prefill: the router's top-k and softmax weights for each token of a prefill step
// (entry t*k + j is token t's j-th choice), one invocation per token, for moe_route_prefill
// to group by expert.

//!include topk

const WG: u32 = 64u;

struct Params {
    n_tokens: u32,
    n_experts: u32,
    k: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// binding 1: router_logits [n_tokens, n_experts] (topk.wgsl)
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;      // [n_tokens * k]
@group(0) @binding(3) var<storage, read_write> experts: array<u32>;      // [n_tokens * k]

@compute @workgroup_size(WG)
fn moe_topk_prefill(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if t >= params.n_tokens {
        return;
    }
    let k = params.k;
    let r = router_topk(t, params.n_experts, k);
    for (var j = 0u; j < k; j++) {
        experts[t * k + j] = r.ids[j];
        weights[t * k + j] = r.weights[j];
    }
}
