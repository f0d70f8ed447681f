// rmsnorm_f32: out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * gain, in f32 (the gain multiplies
// after normalising, as gpt-oss does). One workgroup per token. Prefill only: decode fuses the
// norm into the next matvec.

//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;

struct Params {
    n_tokens: u32,
    hidden: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n_tokens, hidden]
@group(0) @binding(2) var<storage, read> gain: array<f32>;         // [hidden]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // [n_tokens, hidden]

@compute @workgroup_size(WG)
fn rmsnorm_f32(ids: ReduceIds, @builtin(workgroup_id) wg_id: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg_id.x + wg_id.y * nwg.x;
    if t >= params.n_tokens {
        return;
    }
    let base = t * params.hidden;
    var ss = 0.0;
    for (var i = ids.lid; i < params.hidden; i += WG) {
        let v = x[base + i];
        ss += v * v;
    }
    let total = workgroup_sum(ss, ids);
    let scale = inverseSqrt(total / f32(params.hidden) + params.eps);
    for (var i = ids.lid; i < params.hidden; i += WG) {
        out[base + i] = x[base + i] * scale * gain[i];
    }
}
