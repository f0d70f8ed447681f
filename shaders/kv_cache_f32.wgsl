// KV cache in f32: one u32 word per element (its bits). The including kernel defines the
// binding numbers K_CACHE_BINDING and V_CACHE_BINDING. kv_cache_f16.wgsl has the same interface.
// Layout [kv_heads, capacity, head_dim]; e is an element index, even for the pair functions.

@group(0) @binding(K_CACHE_BINDING) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(V_CACHE_BINDING) var<storage, read_write> v_cache: array<u32>;

fn load_k(e: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(k_cache[e]), bitcast<f32>(k_cache[e + 1u]));
}

fn load_v(e: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(v_cache[e]), bitcast<f32>(v_cache[e + 1u]));
}

fn store_k(e: u32, v: vec2<f32>) {
    k_cache[e] = bitcast<u32>(v.x);
    k_cache[e + 1u] = bitcast<u32>(v.y);
}

fn store_v(e: u32, v: vec2<f32>) {
    v_cache[e] = bitcast<u32>(v.x);
    v_cache[e + 1u] = bitcast<u32>(v.y);
}
