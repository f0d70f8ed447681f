// Router top-k and softmax over the selected logits, for moe_route_prefill (the decode
// router, router_f32_bf16w, ranks its own). The including kernel binds the router logits
// [tokens, n_experts] at binding 1. Ties go to the lowest expert index; the softmax runs over
// the k selected logits only (gpt-oss: top-k, then softmax).

@group(0) @binding(1) var<storage, read> router_logits: array<f32>;

const TOPK_MAX: u32 = 32u;

struct TopK {
    ids: array<u32, TOPK_MAX>,
    weights: array<f32, TOPK_MAX>,
}

// The top `k` of token `t`'s `n_experts` logits, in descending order, with softmax weights.
fn router_topk(t: u32, n_experts: u32, k: u32) -> TopK {
    var r: TopK;
    let base = t * n_experts;
    for (var j = 0u; j < k; j++) {
        var best = 0u;
        var best_v = 0.0;
        var found = false;
        for (var e = 0u; e < n_experts; e++) {
            var taken = false;
            for (var i = 0u; i < j; i++) {
                taken = taken || r.ids[i] == e;
            }
            let v = router_logits[base + e];
            if !taken && (!found || v > best_v) {
                best = e;
                best_v = v;
                found = true;
            }
        }
        r.ids[j] = best;
        r.weights[j] = best_v;
    }
    // Softmax over the selected logits; the first is the largest.
    let m = r.weights[0];
    var sum = 0.0;
    for (var j = 0u; j < k; j++) {
        let e = exp(r.weights[j] - m);
        r.weights[j] = e;
        sum += e;
    }
    for (var j = 0u; j < k; j++) {
        r.weights[j] = r.weights[j] / sum;
    }
    return r;
}
