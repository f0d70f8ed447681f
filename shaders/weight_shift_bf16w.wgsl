// weight_shift_bf16w: per row of a bf16 weight matrix (one stored part), the power of two that
// matmul_f16_bf16w divides the row by on its way to f16, so that the row's largest |w| lands
// in [2^14, 2^15): e - 141 for the row's largest exponent field e (max|w| < 2^(e - 126)),
// clamped to [-100, 113] so that 2^+-shift stays a normal f32. The weights do not change, so
// this runs once when a model's prefill is set up (model::prefill) rather than in each of the
// matmul's workgroups, which would each read their rows whole before their first product.
// One workgroup per row.

const WG: u32 = 64u;

struct Params {
    rows: u32,
    k: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;           // [rows, K/8] 8 bf16 each
@group(0) @binding(2) var<storage, read_write> w_shift: array<i32>;     // [rows]

var<workgroup> largest: array<u32, WG>;

// The largest exponent field of the 8 bf16 in `q`.
fn bf16_emax(q: vec4<u32>) -> u32 {
    let lo = (q >> vec4<u32>(7u)) & vec4<u32>(0xffu);
    let hi = (q >> vec4<u32>(23u)) & vec4<u32>(0xffu);
    let m = max(lo, hi);
    return max(max(m.x, m.y), max(m.z, m.w));
}

@compute @workgroup_size(WG)
fn weight_shift_bf16w(@builtin(local_invocation_index) lid: u32,
                      @builtin(workgroup_id) wg_id: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    // Uniform per workgroup: an early return keeps the barriers below in uniform control flow.
    let n = wg_id.x + wg_id.y * nwg.x;
    if n >= params.rows {
        return;
    }
    let k8 = params.k / 8u;
    var m = 0u;
    for (var j = lid; j < k8; j += WG) {
        m = max(m, bf16_emax(w[n * k8 + j]));
    }
    largest[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if lid < s {
            largest[lid] = max(largest[lid], largest[lid + s]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        w_shift[n] = clamp(i32(largest[0]) - 141, -100, 113);
    }
}
