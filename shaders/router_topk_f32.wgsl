// router_topk_f32: the MoE router's second half for one token: the top k of the n_experts
// logits (router_f32_bf16w's; ties to the lowest expert, NaN as the lowest) and the softmax
// over those k: route = [ids[k], weights[k] (f32 bits)]. One workgroup, an invocation per
// expert: expert i's rank is the number of experts ahead of it (a larger logit, or an equal
// one at a lower index), a total order once NaN reads as -huge; the experts of rank below k
// write themselves to their places (one barrier instead of k rounds of a tree).

const WG: u32 = 256u;            // MAX_EXPERTS
const NEG_HUGE: f32 = -3.0e38;

struct Params {
    n_experts: u32,   // at most WG
    k: u32,           // experts per token, at most 32
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // [n_experts]
@group(0) @binding(2) var<storage, read_write> route: array<u32>;    // [2 k]

var<workgroup> staged: array<f32, WG>;
var<workgroup> chosen_v: array<f32, 32>;
var<workgroup> chosen_i: array<u32, 32>;

// A logit in the top-k's order: NaN as the lowest.
fn ordered(v: f32) -> f32 {
    return select(NEG_HUGE, v, v == v);
}

@compute @workgroup_size(WG)
fn router_topk_f32(@builtin(local_invocation_index) lid: u32) {
    if lid < params.n_experts {
        staged[lid] = ordered(logits[lid]);
    }
    workgroupBarrier();
    if lid < params.n_experts {
        let v = staged[lid];
        var rank = 0u;
        for (var j = 0u; j < params.n_experts; j++) {
            let o = staged[j];
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
