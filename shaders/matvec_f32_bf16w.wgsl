// matvec_f32_bf16w: out = W x (+ bias) (+ out) for one token, W a bf16 [rows, K] matrix (or one
// row-range part of a split one). With NORM, x is RMS-normalised on the fly:
//   out = rsqrt(mean(x^2) + eps) * W (x * gain) + bias,
// which is RMSNorm fused into its consumer (each workgroup recomputes the norm from the same x
// loads it needs anyway). Work split: one workgroup per ROWS output rows; thread t reads 8-element
// chunks t, t+WG, ... of x and of each row (16-byte loads), keeps ROWS partial sums, and the
// workgroup reduces them. Used for q/k/v (one fused matrix), o_proj (+ residual), router, lm_head.

//!include bf16
//!include reduce

const WG: u32 = 256u;
const REDUCE_SIZE: u32 = WG;
const ROWS: u32 = 4u;

override NORM: bool = false;
override BIAS: bool = true;
// Accumulate into out (the residual stream) instead of overwriting it.
override RESIDUAL: bool = false;

struct Params {
    rows: u32,        // rows in this part
    k8: u32,          // K / 8
    out_offset: u32,  // index of this part's first row in out and bias
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;     // [rows, K/8] bf16 x 8
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;     // [K/4]
@group(0) @binding(3) var<storage, read> gain: array<vec4<f32>>;  // [K/4] (NORM only)
@group(0) @binding(4) var<storage, read> bias: array<f32>;        // [out_offset + rows] (BIAS only)
@group(0) @binding(5) var<storage, read_write> out: array<f32>;   // [out_offset + rows]

fn bf16x4_lo(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

@compute @workgroup_size(WG)
fn matvec_f32_bf16w(ids: ReduceIds,
                    @builtin(workgroup_id) wg_id: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let row0 = (wg_id.x + wg_id.y * nwg.x) * ROWS;
    if row0 >= params.rows {
        return;
    }
    let n = min(ROWS, params.rows - row0);
    var acc = array<f32, ROWS>();
    var ss = 0.0;
    for (var c = ids.lid; c < params.k8; c += WG) {
        var xa = x[2u * c];
        var xb = x[2u * c + 1u];
        if NORM {
            ss += dot(xa, xa) + dot(xb, xb);
            xa *= gain[2u * c];
            xb *= gain[2u * c + 1u];
        }
        for (var r = 0u; r < n; r++) {
            let q = w[(row0 + r) * params.k8 + c];
            acc[r] += dot(xa, bf16x4_lo(q.xy)) + dot(xb, bf16x4_lo(q.zw));
        }
    }
    var scale = 1.0;
    if NORM {
        let total = workgroup_sum(ss, ids);
        scale = inverseSqrt(total / f32(params.k8 * 8u) + params.eps);
    }
    for (var r = 0u; r < ROWS; r++) {
        let total = workgroup_sum(acc[r], ids);
        if ids.lid == r && r < n {
            let i = params.out_offset + row0 + r;
            var y = total * scale;
            if BIAS {
                y += bias[i];
            }
            if RESIDUAL {
                y += out[i];
            }
            out[i] = y;
        }
    }
}
