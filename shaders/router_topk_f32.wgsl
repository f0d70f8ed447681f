// router_topk_f32: the top k of the router logits (ties to the lowest expert) and the softmax
// over those k logits, written once per layer for the MoE kernels: route = [ids[k],
// weights[k] (f32 bits)]. One workgroup: each round is a parallel argmax over the experts not
// yet taken (a tree over (value, index) in workgroup memory).

const WG: u32 = 256u;
const NEG_HUGE: f32 = -3.0e38;

struct Params {
    n_experts: u32,
    k: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;        // [n_experts]
@group(0) @binding(2) var<storage, read_write> route: array<u32>;   // [2 k]

var<workgroup> vals: array<f32, WG>;
var<workgroup> idx: array<u32, WG>;
var<workgroup> chosen_v: array<f32, 32>;
var<workgroup> chosen_i: array<u32, 32>;

@compute @workgroup_size(WG)
fn router_topk_f32(@builtin(local_invocation_index) lid: u32) {
    var mine = NEG_HUGE;
    var valid = lid < params.n_experts;
    if valid {
        mine = logits[lid];
    }
    for (var j = 0u; j < params.k; j++) {
        vals[lid] = mine;
        idx[lid] = select(0xffffffffu, lid, valid);
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s /= 2u) {
            if lid < s {
                let oi = idx[lid + s];
                let ov = vals[lid + s];
                let ti = idx[lid];
                if oi != 0xffffffffu && (ti == 0xffffffffu || ov > vals[lid]
                    || (ov == vals[lid] && oi < ti)) {
                    vals[lid] = ov;
                    idx[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        let winner = idx[0];
        if lid == 0u {
            chosen_v[j] = vals[0];
            chosen_i[j] = winner;
        }
        if lid == winner {
            valid = false;
        }
        workgroupBarrier();
    }
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
