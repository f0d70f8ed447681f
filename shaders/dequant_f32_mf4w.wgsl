// Decodes MXFP4 blocks to f32, exactly: the reference kernel for the MXFP4 format.
// One invocation per 32-block: 16 bytes of nibbles and one scale byte in, 32 f32 out.
// Layout: blocks [.., N, K/32, 16] u8, scales [.., N, K/32] u8, out [.., N, K] f32; the leading
// dimensions flatten, so block b covers out[32 b .. 32 b + 32).

//!include grid
//!include mxfp4

struct Params {
    n_blocks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> blocks: array<vec4<u32>>;   // [n_blocks] 16 bytes each
@group(0) @binding(2) var<storage, read> scales: array<u32>;         // [n_blocks] u8, packed
@group(0) @binding(3) var<storage, read_write> out: array<u32>;      // [n_blocks * 32] f32 bits

const WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn dequant_f32_mf4w(grid: GridIds) {
    let b = grid_index(grid, WORKGROUP);
    if b >= params.n_blocks {
        return;
    }
    let s = mxfp4_byte(scales[b >> 2u], b);
    let q = blocks[b];
    for (var w = 0u; w < 4u; w++) {
        let word = q[w];
        for (var j = 0u; j < 4u; j++) {
            let byte = (word >> (8u * j)) & 0xffu;
            let k = 32u * b + 8u * w + 2u * j;
            out[k] = mxfp4_value_bits(byte & 0xfu, s);
            out[k + 1u] = mxfp4_value_bits(byte >> 4u, s);
        }
    }
}
