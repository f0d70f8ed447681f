// bandwidth_read: reads a large buffer once with 16-byte loads (grid-stride) to measure the
// memory bandwidth a WGSL kernel can reach on this adapter: the roofline decode is held to.
// Each invocation folds what it read into one word, written only if it matches a value the
// data never produces in practice, so the reads cannot be optimised away.

struct Params {
    n_vec4: u32,
    stride: u32,   // invocations in the grid
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn bandwidth_read(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = gid.x; i < params.n_vec4; i += params.stride) {
        acc ^= data[i];
    }
    let v = acc.x ^ acc.y ^ acc.z ^ acc.w;
    if v == 0x12345678u {
        sink[gid.x % 256u] = v;
    }
}
