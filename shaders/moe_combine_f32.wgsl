// moe_combine_f32: x[r] += y[0, r] + y[1, r] + ... + y[k-1, r], the MoE block's residual add
// for one token, slots summed in order (deterministic). y holds the weighted expert outputs
// of moe_down_f32_mf4w. One invocation per element.

struct Params {
    hidden: u32,
    k: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;            // [k, hidden]
@group(0) @binding(2) var<storage, read_write> x: array<f32>;      // [hidden]

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn moe_combine_f32(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= params.hidden {
        return;
    }
    var sum = 0.0;
    for (var j = 0u; j < params.k; j++) {
        sum += y[j * params.hidden + r];
    }
    x[r] += sum;
}
