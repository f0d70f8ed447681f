// matvec_f32_bf16w: out = W x (+ bias) (+ out) for one token, W a bf16 [rows, K] matrix (or one
// row-range part of a split one). With NORM, x is RMS-normalised on the fly:
//   out = rsqrt(mean(x^2) + eps) * W (x * gain) + bias,
// i.e. RMSNorm fused into its consumer; each group recomputes the norm from the x chunks it
// loads anyway. Work split: a workgroup owns ROWS_PER_WG rows; each group (a subgroup, or 32
// invocations on the portable path) takes R rows at a time, its lanes striding over 8-element
// chunks of K with 16-byte loads, so every x chunk is loaded once for R rows. One group sum
// per row, no workgroup barrier on the subgroup path.
// Options: NORMED_OUT (also writes x * rsqrt * gain, the MoE's input), ARGMAX
// (each workgroup writes the largest of its outputs and its row, for the greedy sampler; the
// row NONFINITE when any of its outputs is NaN or infinite, so the sampler can refuse them).

//!include bf16
//!include reduce

const WG: u32 = 128u;
const REDUCE_SIZE: u32 = WG;
const MAX_R: u32 = 4u;
const NEG_HUGE: f32 = -3.0e38;
// Argmax row meaning "a NaN or infinity was among these outputs" (never a real row: vocab <
// 2^32 - 2). Tested on the bits: WGSL lets compilers assume floats are finite.
const NONFINITE: u32 = 0xfffffffeu;

override ROWS_PER_WG: u32 = 16u;
// Rows a group computes at once (at most MAX_R): more reuse of each x chunk, fewer workgroups.
override R: u32 = 4u;
override NORM: bool = false;
override BIAS: bool = true;
// Accumulate into out (the residual stream) instead of overwriting it.
override RESIDUAL: bool = false;
override NORMED_OUT: bool = false;
override ARGMAX: bool = false;

struct Params {
    rows: u32,           // rows in this part
    k8: u32,             // K / 8
    out_offset: u32,     // index of this part's first row in out and bias
    eps: f32,
    argmax_offset: u32,  // index of this part's first workgroup in argmax
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;       // [rows, K/8] bf16 x 8
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;       // [K/4]
@group(0) @binding(3) var<storage, read> gain: array<vec4<f32>>;    // [K/4] (NORM)
@group(0) @binding(4) var<storage, read> bias: array<f32>;          // [out_offset + rows] (BIAS)
@group(0) @binding(5) var<storage, read_write> out: array<f32>;     // [out_offset + rows]
@group(0) @binding(6) var<storage, read_write> normed: array<vec4<f32>>;  // [K/4] (NORMED_OUT)
@group(0) @binding(7) var<storage, read_write> argmax: array<vec2<u32>>;  // [workgroups] (ARGMAX)

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

fn bf16x4(v: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

@compute @workgroup_size(WG)
fn matvec_f32_bf16w(ids: ReduceIds,
                    @builtin(workgroup_id) wg_id: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wg_id.x + wg_id.y * nwg.x;
    let row0 = wg * ROWS_PER_WG;
    if row0 >= params.rows {
        return;
    }
    let row_end = min(row0 + ROWS_PER_WG, params.rows);
    let g = group_id(ids);
    let lane = group_lane(ids);
    let lanes = group_lanes(ids);
    let ng = n_groups(ids);

    var my_best = NEG_HUGE;
    var my_best_i = 0xffffffffu;
    var my_bad = false;
    // With NORM the sum of squares rides along the first pass's loads of x; the norm's
    // scale multiplies each row's sum at the end (it is common to all terms).
    var ss = 0.0;
    var scale = 1.0;
    let passes = (ROWS_PER_WG + ng * R - 1u) / (ng * R);
    for (var step_i = 0u; step_i < passes; step_i++) {
        let rbase = row0 + (step_i * ng + g) * R;
        var acc = array<f32, MAX_R>();
        // Two chunks per lane and step, all their loads issued before any arithmetic, so a
        // lane has 2 R loads in flight; a missing second chunk repeats the first, weighted 0.
        for (var c0 = lane; c0 < params.k8; c0 += 2u * lanes) {
            let has1 = c0 + lanes < params.k8;
            let c1 = select(c0, c0 + lanes, has1);
            var q0: array<vec4<u32>, MAX_R>;
            var q1: array<vec4<u32>, MAX_R>;
            for (var r = 0u; r < R; r++) {
                let row = min(rbase + r, row_end - 1u) * params.k8;
                q0[r] = w[row + c0];
                q1[r] = w[row + c1];
            }
            var xa0 = x[2u * c0];
            var xb0 = x[2u * c0 + 1u];
            var xa1 = x[2u * c1];
            var xb1 = x[2u * c1 + 1u];
            let w1 = select(0.0, 1.0, has1);
            if NORM {
                if step_i == 0u {
                    ss += dot(xa0, xa0) + dot(xb0, xb0) + w1 * (dot(xa1, xa1) + dot(xb1, xb1));
                }
                xa0 *= gain[2u * c0];
                xb0 *= gain[2u * c0 + 1u];
                xa1 *= gain[2u * c1];
                xb1 *= gain[2u * c1 + 1u];
            }
            for (var r = 0u; r < R; r++) {
                acc[r] += dot(xa0, bf16x4(q0[r].xy)) + dot(xb0, bf16x4(q0[r].zw))
                    + w1 * (dot(xa1, bf16x4(q1[r].xy)) + dot(xb1, bf16x4(q1[r].zw)));
            }
        }
        if NORM && step_i == 0u {
            scale = inverseSqrt(group_sum(ss, ids) / f32(params.k8 * 8u) + params.eps);
        }
        for (var r = 0u; r < R; r++) {
            let total = group_sum(acc[r], ids);
            let row = rbase + r;
            if lane == 0u && row < row_end {
                let i = params.out_offset + row;
                var y = total * scale;
                if BIAS {
                    y += bias[i];
                }
                if RESIDUAL {
                    y += out[i];
                }
                out[i] = y;
                if y > my_best {
                    my_best = y;
                    my_best_i = i;
                }
                if ARGMAX && (bitcast<u32>(y) & 0x7f800000u) == 0x7f800000u {
                    my_bad = true;
                }
            }
        }
    }

    if NORMED_OUT && NORM {
        // The dispatch's invocations share the chunks of the normalised x.
        let n_inv = (params.rows + ROWS_PER_WG - 1u) / ROWS_PER_WG * WG;
        for (var c = wg * WG + ids.lid; c < params.k8; c += n_inv) {
            normed[2u * c] = x[2u * c] * gain[2u * c] * scale;
            normed[2u * c + 1u] = x[2u * c + 1u] * gain[2u * c + 1u] * scale;
        }
    }

    if ARGMAX {
        // Rows are visited in increasing order per group, so the first maximum is the lowest.
        if lane == 0u {
            best_v[g] = my_best;
            best_i[g] = select(my_best_i, NONFINITE, my_bad);
        }
        workgroupBarrier();
        if ids.lid == 0u {
            var v = NEG_HUGE;
            var i = 0xffffffffu;
            var bad = false;
            for (var j = 0u; j < ng; j++) {
                bad = bad || best_i[j] == NONFINITE;
                if best_i[j] < NONFINITE && (i == 0xffffffffu || best_v[j] > v
                    || (best_v[j] == v && best_i[j] < i)) {
                    v = best_v[j];
                    i = best_i[j];
                }
            }
            argmax[params.argmax_offset + wg] = vec2<u32>(bitcast<u32>(v), select(i, NONFINITE, bad));
        }
    }
}
