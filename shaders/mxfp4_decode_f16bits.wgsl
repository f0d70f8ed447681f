// One word of an MXFP4 block's dot product (mxfp4_word), where unpack2x16float is available
// (the DownlevelFlags::SHADER_F16_IN_F32 of every non-portable device here): two E2M1
// nibbles decoded per integer mask into an f16 pair, no table. mxfp4_decode_lut.wgsl is the
// same function through the nibble table. On the H200 this one is 10-15% faster in the MoE
// decode kernels, which are bound by their instruction stream (BENCHMARKS.md, change 12: the
// f16 conversions themselves cost nothing measurable there).

//!include mxfp4

// mxfp4_word returns its sum times 2^-MXFP4_WORD_SHIFT: scale it with the block scale plus this.
const MXFP4_WORD_SHIFT: u32 = 14u;

// The E2M1 nibbles at bits 4i and 16 + 4i of `word` (after the caller's shift) as f16 bits:
// the 3-bit code goes to f16 bits 9-11 (low exponent bits and the top mantissa bit), the sign
// to bit 15. Code c then reads as E2M1(c) * 2^-14 exactly (code 1 as the f16 subnormal 2^-15).
const MXFP4_F16_MAG: u32 = 0x0e000e00u;
const MXFP4_F16_SIGN: u32 = 0x80008000u;

// sum_i E2M1(nibble i of word) * x_i * 2^-14 over one word of a block (elements a then b),
// decoding two nibbles per integer mask into an f16 pair (no table): nibbles i and i + 4 share
// one unpack2x16float.
fn mxfp4_word(word: u32, a: vec4<f32>, b: vec4<f32>) -> f32 {
    let p0 = unpack2x16float(((word << 9u) & MXFP4_F16_MAG) | ((word << 12u) & MXFP4_F16_SIGN));
    let p1 = unpack2x16float(((word << 5u) & MXFP4_F16_MAG) | ((word << 8u) & MXFP4_F16_SIGN));
    let p2 = unpack2x16float(((word << 1u) & MXFP4_F16_MAG) | ((word << 4u) & MXFP4_F16_SIGN));
    let p3 = unpack2x16float(((word >> 3u) & MXFP4_F16_MAG) | (word & MXFP4_F16_SIGN));
    return p0.x * a.x + p1.x * a.y + p2.x * a.z + p3.x * a.w
        + p0.y * b.x + p1.y * b.y + p2.y * b.z + p3.y * b.w;
}
