// One MXFP4 block's dot product, scaled (mxfp4_block), through the nibble table in workgroup
// memory (mxfp4_init_lut first): the portable path's, and any device without
// unpack2x16float. mxfp4_decode_f16bits.wgsl is the same function without the table.

//!include mxfp4

// sum_i E2M1(q_i) x_i times the block scale 2^(s - 127).
fn mxfp4_block(q: vec4<u32>, s: u32, x: array<vec4<f32>, 8>) -> f32 {
    return mxfp4_scale(mxfp4_dot_block(q, x), s);
}
