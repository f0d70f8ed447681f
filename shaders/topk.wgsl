// The router's top-k by rank, for one token in one workgroup, shared by router_topk_f32
// (decode) and moe_topk_prefill: the top k of n_experts logits (ties to the lowest expert,
// NaN as the lowest) and the softmax over those k. An invocation per expert: expert i's rank
// is the number of experts ahead of it (a larger logit, or an equal one at a lower index), a
// total order once NaN reads as -huge; the experts of rank below k write themselves to their
// places (one barrier instead of k rounds of a tree). The including kernel's workgroup has
// TOPK_WG invocations.

const TOPK_WG: u32 = 256u;       // MAX_EXPERTS
const TOPK_MAX: u32 = 32u;       // MAX_K
const NEG_HUGE: f32 = -3.0e38;

var<workgroup> topk_staged: array<f32, TOPK_WG>;
var<workgroup> topk_v: array<f32, TOPK_MAX>;   // the chosen logits, by rank
var<workgroup> topk_i: array<u32, TOPK_MAX>;   // the chosen experts, by rank

// A logit in the top-k's order: NaN as the lowest.
fn topk_ordered(v: f32) -> f32 {
    return select(NEG_HUGE, v, v == v);
}

// Ranks the token's logits (invocation lid passes expert lid's; the others any value) into
// topk_v and topk_i. Call from uniform control flow: it ends in a barrier.
fn topk_rank(lid: u32, n_experts: u32, k: u32, logit: f32) {
    if lid < n_experts {
        topk_staged[lid] = topk_ordered(logit);
    }
    workgroupBarrier();
    if lid < n_experts {
        let v = topk_staged[lid];
        var rank = 0u;
        for (var j = 0u; j < n_experts; j++) {
            let o = topk_staged[j];
            rank += u32(o > v || (o == v && j < lid));
        }
        if rank < k {
            topk_v[rank] = v;
            topk_i[rank] = lid;
        }
    }
    workgroupBarrier();
}

// The softmax weight of the expert of rank j, after topk_rank (the first is the largest).
fn topk_weight(j: u32, k: u32) -> f32 {
    let m = topk_v[0];
    var sum = 0.0;
    for (var i = 0u; i < k; i++) {
        sum += exp(topk_v[i] - m);
    }
    return exp(topk_v[j] - m) / sum;
}
