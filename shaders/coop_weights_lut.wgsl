// coop_weights (the nibble-table variant, for devices without unpack2x16float): the expert
// tiles' weight decode, one MXFP4 word into 8 f16 weights of ws. mxfp4_decode's table
// counterpart; coop_weights_f16bits.wgsl decodes the same values with integer masks.

//!include coop_tile
//!include mxfp4

// Both E2M1 values of every possible byte (low nibble first) as an f16 pair: one lookup and
// one f16 multiply a byte, where f32 values would take two multiplies and a conversion. The
// values (0 to 6) are exact in f16.
var<workgroup> coop_pairs: array<vec2<f16>, 256>;

// Fills coop_pairs; call from every invocation, then barrier before use.
fn coop_init_weights(lid: u32) {
    for (var b = lid; b < 256u; b += WG) {
        coop_pairs[b] = vec2<f16>(vec2<f32>(MXFP4_LUT[b & 15u], MXFP4_LUT[b >> 4u]));
    }
}

// Word q of a block (its 8 E2M1 values in K order) times 2^d, at halfs o..o + 8 of ws: d is
// the block's scale less its row's (-30 <= d <= 0).
fn coop_put_weights(o: u32, q: u32, d: i32) {
    // 2^max(d, -14), a normal f16: the products are exact (E2M1 values have two
    // significant bits).
    let f = vec2<f16>(f16(mxfp4_pow2(max(d, -14))));
    var v0 = coop_pairs[q & 0xffu] * f;
    var v1 = coop_pairs[(q >> 8u) & 0xffu] * f;
    var v2 = coop_pairs[(q >> 16u) & 0xffu] * f;
    var v3 = coop_pairs[q >> 24u] * f;
    if d < -14 {
        // The rest of the scale, 2^(d + 14) >= 2^-16 (exact in f16): one rounding, to f16's
        // subnormals.
        let g = vec2<f16>(f16(mxfp4_pow2(d + 14)));
        v0 *= g;
        v1 *= g;
        v2 *= g;
        v3 *= g;
    }
    coop_put_w8h(o, vec4<f16>(v0, v1), vec4<f16>(v2, v3));
}
