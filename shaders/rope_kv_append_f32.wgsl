// rope_kv_append_f32: YaRN RoPE on q (in place) and k, then k and v appended to the KV cache.
// Half-split rotation: dim i pairs with dim i + D/2 and uses frequency i; the cos/sin table
// already carries YaRN's attention factor. One invocation per (token, head, 2 adjacent pairs):
// it owns dims 2p, 2p+1, 2p+D/2, 2p+1+D/2, so an f16 cache word (two adjacent dims) is written
// by one invocation only. Cache layout [kv_heads, capacity, D], slot = position % capacity
// (capacity is the context for full layers, a ring for sliding ones); f16 or f32 by variant.

//!include grid
//!include step
//!include kv_cache

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    capacity: u32,
    qkv_stride: u32,  // q_dim + 2 kv_dim
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read_write> qkv: array<f32>;       // [n_tokens, qkv_stride]
@group(0) @binding(3) var<storage, read> rope: array<vec2<f32>>;      // [positions, D/2] (cos, sin)
const K_CACHE_BINDING: u32 = 4u;  // [kv_heads, capacity, D]
const V_CACHE_BINDING: u32 = 5u;  // [kv_heads, capacity, D]

const WG: u32 = 128u;

fn rotate(x1: f32, x2: f32, cs: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x1 * cs.x - x2 * cs.y, x2 * cs.x + x1 * cs.y);
}

@compute @workgroup_size(WG)
fn rope_kv_append_f32(grid: GridIds) {
    let half = params.head_dim / 2u;
    let quads = half / 2u;
    let heads = params.n_heads + params.n_kv_heads;
    let i = grid_index(grid, WG);
    if i >= step.n_tokens * heads * quads {
        return;
    }
    let p = i % quads;
    let h = (i / quads) % heads;
    let t = i / (quads * heads);
    let pos = step.pos0 + t;
    let d = 2u * p;
    let cs0 = rope[pos * half + d];
    let cs1 = rope[pos * half + d + 1u];
    let row = t * params.qkv_stride;
    if h < params.n_heads {
        let base = row + h * params.head_dim;
        let a = rotate(qkv[base + d], qkv[base + d + half], cs0);
        let b = rotate(qkv[base + d + 1u], qkv[base + d + 1u + half], cs1);
        qkv[base + d] = a.x;
        qkv[base + d + half] = a.y;
        qkv[base + d + 1u] = b.x;
        qkv[base + d + 1u + half] = b.y;
        return;
    }
    let kvh = h - params.n_heads;
    let kv_dim = params.n_kv_heads * params.head_dim;
    let kbase = row + params.n_heads * params.head_dim + kvh * params.head_dim;
    let vbase = kbase + kv_dim;
    let a = rotate(qkv[kbase + d], qkv[kbase + d + half], cs0);
    let b = rotate(qkv[kbase + d + 1u], qkv[kbase + d + 1u + half], cs1);
    let slot = pos % params.capacity;
    let cbase = (kvh * params.capacity + slot) * params.head_dim;
    store_k(cbase + d, vec2<f32>(a.x, b.x));
    store_k(cbase + d + half, vec2<f32>(a.y, b.y));
    store_v(cbase + d, vec2<f32>(qkv[vbase + d], qkv[vbase + d + 1u]));
    store_v(cbase + d + half, vec2<f32>(qkv[vbase + d + half], qkv[vbase + d + 1u + half]));
}
