// row_shift_f32: per token row of a prefill step's activations, the power of two that the
// cooperative-matrix kernels (moe_gate_up_prefill_f16_mf4w, matmul_f16_bf16w) divide the row
// by before rounding it to f16: the smallest s >= 0 with max|x| 2^-s < 2^15 (f16's largest
// finite value is just under 2^16). Rows already below 2^15, the usual case, get 0: nothing
// is rescaled. It also writes the shifted row as those kernels take it, two f16 parts each
// (f16_split), so that they load their operands as they store them: each row is converted
// once here rather than once by every column tile of every matmul that reads it. One
// workgroup per token.
//
// x16 holds, per run of 4 values, the 4 hi parts then the 4 lo parts. Built only where the
// device computes on cooperative matrices (those kernels' f16 types).

enable f16;

//!include f16_split

const WG: u32 = 64u;

struct Params {
    n_tokens: u32,
    hidden: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [n_tokens, hidden]
@group(0) @binding(2) var<storage, read_write> shift: array<u32>;    // [n_tokens]
@group(0) @binding(3) var<storage, read_write> x16: array<vec4<f16>>; // [n_tokens, hidden / 4, 2]

var<workgroup> largest: array<f32, WG>;

@compute @workgroup_size(WG)
fn row_shift_f32(@builtin(local_invocation_index) lid: u32,
                       @builtin(workgroup_id) wg_id: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    // Uniform per workgroup: an early return keeps the barriers below in uniform control flow.
    let t = wg_id.x + wg_id.y * nwg.x;
    if t >= params.n_tokens {
        return;
    }
    let n4 = params.hidden / 4u;
    var m = 0.0;
    for (var i = lid; i < n4; i += WG) {
        let v = abs(x[t * n4 + i]);
        m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
    }
    largest[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if lid < s {
            largest[lid] = max(largest[lid], largest[lid + s]);
        }
        workgroupBarrier();
    }
    // largest = 1.f x 2^e with e >= 15: dividing by 2^(e - 14) leaves [2^14, 2^15).
    let e = i32((bitcast<u32>(largest[0]) >> 23u) & 0xffu) - 127;
    let s = u32(max(e - 14, 0));
    if lid == 0u {
        shift[t] = s;
    }
    // 2^-s as an f32 (s <= 113: a normal number).
    let f = bitcast<f32>(u32(127 - i32(s)) << 23u);
    for (var i = lid; i < n4; i += WG) {
        let v = x[t * n4 + i] * f;
        let hi = f16_hi(v);
        x16[2u * (t * n4 + i)] = vec4<f16>(hi);
        x16[2u * (t * n4 + i) + 1u] = vec4<f16>(f16_lo(v, hi));
    }
}
