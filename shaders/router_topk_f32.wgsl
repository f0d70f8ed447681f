// router_topk_f32: the MoE router's second half for one token: the top k of the n_experts
// logits (router_f32_bf16w's) and the softmax over those k (topk.wgsl): route = [ids[k],
// weights[k] (f32 bits)]. One workgroup.

//!include topk

struct Params {
    n_experts: u32,   // at most TOPK_WG
    k: u32,           // experts per token, at most TOPK_MAX
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // [n_experts]
@group(0) @binding(2) var<storage, read_write> route: array<u32>;    // [2 k]

@compute @workgroup_size(TOPK_WG)
fn router_topk_f32(@builtin(local_invocation_index) lid: u32) {
    var logit = 0.0;
    if lid < params.n_experts {
        logit = logits[lid];
    }
    topk_rank(lid, params.n_experts, params.k, logit);
    if lid < params.k {
        route[lid] = topk_i[lid];
        route[params.k + lid] = bitcast<u32>(topk_weight(lid, params.k));
    }
}
