// matmul_f16_bf16w: matmul_f32_bf16w on cooperative matrices (coop_tile): out[t, n] =
// sum_k x[t, k] W[n, k] (+ bias[n]) (+ out[t, n]) for a batch of tokens (prefill), W bf16
// [rows, K] (one row-part of a possibly split matrix), f16 operands and f32 accumulation.
// K must be a multiple of KB.
//
// Range: bf16 carries f32's exponent range and f16 does not. Each token row of x comes
// divided by 2^shift[t] and split into two f16 parts (row_shift_f32's x16); each weight row by 2^w_shift[n]
// (weight_shift_bf16w, computed once per model), which puts its largest |w| in [2^14, 2^15).
// Both come back as exact powers of two in f32. Nothing becomes inf; a weight more than 2^28 below its row's largest lands on f16
// subnormals (off by at most 2^-24 x 2^w_shift[n]).

//!include coop_tile

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
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;      // [rows, K/8] 8 bf16 each
@group(0) @binding(2) var<storage, read> x16: array<vec4<f16>>;    // [n_tokens, K/4, 2]: hi, lo
@group(0) @binding(3) var<storage, read> shift: array<u32>;        // [n_tokens]
@group(0) @binding(4) var<storage, read> bias: array<f32>;         // [out_offset + rows]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;    // [n_tokens, out_stride]
@group(0) @binding(6) var<storage, read> w_shift: array<i32>;      // [rows]

// A step's loads per invocation: TM x KB / 4 runs of x and TN x KB / 8 runs of W, over
// WG >= 256 invocations.
const FETCH: u32 = 4u;

var<workgroup> tile_w_shift: array<i32, TN>;   // w_shift of the tile's weight rows
var<workgroup> x_shift: array<u32, TM>;
// The workgroup's first token and first weight row, for coop_out.
var<private> corner: vec2<u32>;

// 2^e as f32 for -126 <= e <= 127, from its exponent bits.
fn pow2(e: i32) -> f32 {
    return bitcast<f32>(u32(e + 127) << 23u);
}

// Fills tile_w_shift for the tile's weight rows and x_shift for its tokens.
fn row_shifts(lid: u32, t0: u32, n0: u32) {
    if lid < TN {
        var s = 0;
        if n0 + lid < params.rows {
            s = w_shift[n0 + lid];
        }
        tile_w_shift[lid] = s;
    }
    if lid < TM {
        x_shift[lid] = select(0u, shift[t0 + lid], t0 + lid < params.n_tokens);
    }
}

struct Fetch {
    x: array<CoopX4, FETCH>,
    w: array<vec4<u32>, FETCH>,
}

fn fetch(lid: u32, t0: u32, n0: u32, step: u32) -> Fetch {
    var r: Fetch;
    let k4 = params.k / 4u;
    let k8 = params.k / 8u;
    for (var j = 0u; j < FETCH; j++) {
        let i = lid + j * WG;
        let m = i / (KB / 4u);
        if i < TM * KB / 4u && t0 + m < params.n_tokens {
            let run = (t0 + m) * k4 + step * (KB / 4u) + i % (KB / 4u);
            r.x[j] = CoopX4(x16[2u * run], x16[2u * run + 1u]);
        }
        let n = i / (KB / 8u);
        if i < TN * KB / 8u && n0 + n < params.rows {
            r.w[j] = w[(n0 + n) * k8 + step * (KB / 8u) + i % (KB / 8u)];
        }
    }
    return r;
}

fn store(lid: u32, r: Fetch) {
    for (var j = 0u; j < FETCH; j++) {
        let i = lid + j * WG;
        if i < TM * KB / 4u {
            let m = i / (KB / 4u);
            let o = m * LDS + (i % (KB / 4u)) * 4u;
            coop_put_x4(o, r.x[j]);
        }
        if i < TN * KB / 8u {
            let n = i / (KB / 8u);
            let o = n * LDS + (i % (KB / 8u)) * 8u;
            let f = pow2(-tile_w_shift[n]);
            let q = r.w[j];
            let lo = bitcast<vec4<f32>>(q << vec4<u32>(16u));
            let hi = bitcast<vec4<f32>>(q & vec4<u32>(0xffff0000u));
            coop_put_w8(o, vec4<f32>(lo.x, hi.x, lo.y, hi.y) * f, vec4<f32>(lo.z, hi.z, lo.w, hi.w) * f);
        }
    }
}

fn coop_out(m: u32, n: u32, v: vec2<f32>) {
    let t = corner.x + m;
    if t >= params.n_tokens {
        return;
    }
    let s = pow2(i32(x_shift[m]));
    for (var i = 0u; i < 2u; i++) {
        let nn = n + i;
        if corner.y + nn < params.rows {
            let col = params.out_offset + corner.y + nn;
            var y = v[i] * pow2(tile_w_shift[nn]) * s;
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

@compute @workgroup_size(WG)
fn matmul_f16_bf16w(ids: CoopIds) {
    let n0 = ids.wg_id.x * TN;
    let t0 = ids.wg_id.y * TM;
    corner = vec2<u32>(t0, n0);
    row_shifts(ids.lid, t0, n0);
    workgroupBarrier();
    let blk = coop_block(ids.sg_id, min(TM, params.n_tokens - t0));
    var c: array<coop_mat16x16<f32, C>, 8>;
    let steps = params.k / KB;
    var next = fetch(ids.lid, t0, n0, 0u);
    for (var step = 0u; step < steps; step++) {
        store(ids.lid, next);
        workgroupBarrier();
        if step + 1u < steps {
            next = fetch(ids.lid, t0, n0, step + 1u);
        }
        coop_mma(blk, &c);
        workgroupBarrier();
    }
    coop_emit(ids, blk, c);
}
