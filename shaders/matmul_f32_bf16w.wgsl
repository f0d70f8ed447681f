// matmul_f32_bf16w: out[t, n] = sum_k x[t, k] W[n, k] (+ bias[n]) (+ out[t, n]) for a batch of
// tokens (prefill), W bf16 [rows, K] (one row-part of a possibly split matrix). Classic SIMT
// tiling: a workgroup computes a TM x TN tile of out, 16 x 16 invocations with 4 x 4 outputs
// each, stepping K by TK through workgroup memory (x and W tiles stored k-major, so the inner
// loop reads contiguous vec4s). K must be a multiple of TK.

//!include bf16

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 32u;
const WG: u32 = 256u;

override BIAS: bool = true;
override RESIDUAL: bool = false;

struct Params {
    n_tokens: u32,
    rows: u32,        // rows of W in this part (output columns)
    k: u32,
    out_offset: u32,  // column of this part's first row in out
    out_stride: u32,  // floats per token row in out
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;            // [rows, K/2] bf16 pairs
@group(0) @binding(2) var<storage, read> x: array<f32>;            // [n_tokens, K]
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [out_offset + rows]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // [n_tokens, out_stride]

var<workgroup> xs: array<vec4<f32>, TK * TM / 4u>;   // [TK][TM]
var<workgroup> ws: array<vec4<f32>, TK * TN / 4u>;   // [TK][TN]

@compute @workgroup_size(WG)
fn matmul_f32_bf16w(@builtin(local_invocation_index) lid: u32,
                    @builtin(workgroup_id) wg_id: vec3<u32>) {
    let n0 = wg_id.x * TN;
    let t0 = wg_id.y * TM;
    let tx = lid % 16u;   // 4 output columns
    let ty = lid / 16u;   // 4 output rows (tokens)
    var acc: array<vec4<f32>, 4>;
    let k2 = params.k / 2u;

    for (var kb = 0u; kb < params.k; kb += TK) {
        // x tile: TM tokens x TK, 8 floats per invocation.
        for (var i = lid; i < TM * TK; i += WG) {
            let m = i / TK;
            let kk = i % TK;
            var v = 0.0;
            if t0 + m < params.n_tokens {
                v = x[(t0 + m) * params.k + kb + kk];
            }
            let e = kk * TM + m;
            xs[e / 4u][e % 4u] = v;
        }
        // W tile: TN rows x TK (as bf16 pairs), 4 words per invocation.
        for (var i = lid; i < TN * TK / 2u; i += WG) {
            let n = i / (TK / 2u);
            let kk = 2u * (i % (TK / 2u));
            var v = vec2<f32>(0.0);
            if n0 + n < params.rows {
                v = bf16_pair(w[(n0 + n) * k2 + kb / 2u + kk / 2u]);
            }
            let e = kk * TN + n;
            ws[e / 4u][e % 4u] = v.x;
            let e1 = (kk + 1u) * TN + n;
            ws[e1 / 4u][e1 % 4u] = v.y;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = xs[(kk * TM) / 4u + ty];
            let b = ws[(kk * TN) / 4u + tx];
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let t = t0 + ty * 4u + i;
        if t >= params.n_tokens {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + tx * 4u + j;
            if n < params.rows {
                let col = params.out_offset + n;
                var y = acc[i][j];
                if BIAS {
                    y += bias[col];
                }
                let o = t * params.out_stride + col;
                if RESIDUAL {
                    y += out[o];
                }
                out[o] = y;
            }
        }
    }
}
