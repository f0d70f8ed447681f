// MXFP4 (OCP microscaling, E2M1 elements with one E8M0 scale per 32) decoding, shared by every
// kernel that reads expert weights. A 32-block is 16 bytes (one vec4<u32>): byte j holds element
// 2j in its low nibble and 2j+1 in its high nibble. The scale byte s means 2^(s - 127).
// Overflow safety: the scale is never folded into a narrower type. Matmuls sum E2M1 * x over a
// block and scale the partial sum once with mxfp4_scale (exact power-of-two steps);
// the dequant kernel builds each value's f32 bits with integer arithmetic (exact, subnormals too).

// E2M1 values by nibble: bit 3 sign, bits 2-1 exponent (bias 1), bit 0 mantissa.
const MXFP4_LUT = array<f32, 16>(
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
    -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
);

// 2^k as f32 for -126 <= k <= 127, built from its exponent bits (no exp2 approximation).
fn mxfp4_pow2(k: i32) -> f32 {
    return bitcast<f32>(u32(k + 127) << 23u);
}

// x * 2^(s - 127): one multiply where 2^(s - 127) is a normal f32 (every real checkpoint's
// scale), else the remainder first and then the largest normal power, so neither step
// overflows or flushes to zero unless the exact product does. Callers pass s plus their own
// power-of-two offsets, so s may exceed 255.
fn mxfp4_scale(x: f32, s: u32) -> f32 {
    let e = i32(s) - 127;
    let c = clamp(e, -126, 127);
    var y = x;
    if c != e {
        y *= mxfp4_pow2(e - c);
    }
    return y * mxfp4_pow2(c);
}

// Byte `i` of a u8 tensor stored as packed u32 words.
fn mxfp4_byte(word: u32, i: u32) -> u32 {
    return (word >> ((i & 3u) * 8u)) & 0xffu;
}

// The exact f32 bits of E2M1 `nibble` times 2^(s - 127): +-inf above the f32 range, exact
// subnormals below the normal range, never NaN.
fn mxfp4_value_bits(nibble: u32, s: u32) -> u32 {
    let sign = (nibble & 8u) << 28u;
    let code = nibble & 7u;
    if code == 0u {
        return sign;
    }
    // code 1 is 0.5 = 1.0 * 2^-1; codes 2..7 are (1 + m/2) * 2^(e - 1) with e = code >> 1.
    var exp_fp4 = i32(code >> 1u) - 1;
    var mant = code & 1u;
    if code == 1u {
        exp_fp4 = -1;
        mant = 0u;
    }
    let biased = exp_fp4 + i32(s);
    if biased >= 255 {
        return sign | 0x7f800000u;
    }
    if biased >= 1 {
        return sign | (u32(biased) << 23u) | (mant << 22u);
    }
    // Subnormal: the value is (2 + mant) * 2^(biased - 128), i.e. (2 + mant) << (biased + 21)
    // units of 2^-149; biased >= -1 since exp_fp4 >= -1 and s >= 0.
    return sign | ((2u + mant) << u32(biased + 21));
}

// E2M1 values by nibble in workgroup memory: 16 words in 16 banks, so a subgroup's lookups
// never conflict (equal nibbles broadcast). The decode matvecs use this.
var<workgroup> mxfp4_lut: array<f32, 16>;

// Fills mxfp4_lut; call from every invocation, then barrier before use.
fn mxfp4_init_lut(lid: u32) {
    if lid < 16u {
        mxfp4_lut[lid] = MXFP4_LUT[lid];
    }
}

// sum_i E2M1(nibble i of word) * x_i over one word of a block (8 elements: a then b), through
// mxfp4_lut (unscaled).
fn mxfp4_dot_word_lut(word: u32, a: vec4<f32>, b: vec4<f32>) -> f32 {
    return mxfp4_lut[word & 0xfu] * a.x + mxfp4_lut[(word >> 4u) & 0xfu] * a.y
        + mxfp4_lut[(word >> 8u) & 0xfu] * a.z + mxfp4_lut[(word >> 12u) & 0xfu] * a.w
        + mxfp4_lut[(word >> 16u) & 0xfu] * b.x + mxfp4_lut[(word >> 20u) & 0xfu] * b.y
        + mxfp4_lut[(word >> 24u) & 0xfu] * b.z + mxfp4_lut[word >> 28u] * b.w;
}

// Both values of every possible byte (low nibble first) for one block scale of 2^0: matmuls
// look a whole byte up in workgroup memory instead of decoding nibbles with ALU work (the
// prefill tiles, which decode each weight once per tile).
var<workgroup> mxfp4_pairs: array<vec2<f32>, 256>;

// Fills mxfp4_pairs; call from every invocation, then barrier before use.
fn mxfp4_init_pairs(lid: u32, wg_size: u32) {
    for (var b = lid; b < 256u; b += wg_size) {
        mxfp4_pairs[b] = vec2<f32>(MXFP4_LUT[b & 15u], MXFP4_LUT[b >> 4u]);
    }
}

