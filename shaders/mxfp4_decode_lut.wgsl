// One word of an MXFP4 block's dot product (mxfp4_word) through the nibble table in workgroup
// memory (mxfp4_init_lut first): the portable path's, and any device without
// unpack2x16float. mxfp4_decode_f16bits.wgsl is the same function without the table.

//!include mxfp4

// mxfp4_word's sum is unscaled.
const MXFP4_WORD_SHIFT: u32 = 0u;

// sum_i E2M1(nibble i of word) * x_i over one word of a block (elements a then b).
fn mxfp4_word(word: u32, a: vec4<f32>, b: vec4<f32>) -> f32 {
    return mxfp4_dot_word_lut(word, a, b);
}
