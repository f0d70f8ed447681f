// coop_weights (the f16-bits variant, where unpack2x16float is available: DownlevelFlags::
// SHADER_F16_IN_F32): the expert tiles' weight decode, one MXFP4 word into 8 f16 weights of
// ws, with integer masks and no table (mxfp4_decode_f16bits' trick). The table variant
// (coop_weights_lut.wgsl) costs each tile step 16 workgroup-memory lookups an invocation,
// at random banks; this one costs ALU work, which the step otherwise leaves idle.

//!include coop_tile
//!include mxfp4

// Nothing to fill (the table variant's entry point).
fn coop_init_weights(lid: u32) {}

// Word q of a block (its 8 E2M1 values in K order) times 2^d, at halfs o..o + 8 of ws: d is
// the block's scale less its row's (-30 <= d <= 0). Each value is read as E2M1 * 2^-14
// (mxfp4_decode_f16bits' masks, nibbles i and i + 4 in one unpack2x16float, exact), scaled
// by 2^(d + 14) in f32 (exact: a normal f32) and rounded once to f16, as the table variant's
// two f16 multiplies round: exactly below d = -14 (f16's subnormals), not at all above.
fn coop_put_weights(o: u32, q: u32, d: i32) {
    let f = mxfp4_pow2(d + 14);
    let p0 = unpack2x16float(((q << 9u) & 0x0e000e00u) | ((q << 12u) & 0x80008000u));
    let p1 = unpack2x16float(((q << 5u) & 0x0e000e00u) | ((q << 8u) & 0x80008000u));
    let p2 = unpack2x16float(((q << 1u) & 0x0e000e00u) | ((q << 4u) & 0x80008000u));
    let p3 = unpack2x16float(((q >> 3u) & 0x0e000e00u) | (q & 0x80008000u));
    let a = vec4<f32>(p0.x, p1.x, p2.x, p3.x) * f;
    let b = vec4<f32>(p0.y, p1.y, p2.y, p3.y) * f;
    coop_put_w8h(o, vec4<f16>(a), vec4<f16>(b));
}
