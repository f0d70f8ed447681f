// KV cache in f16: each u32 word packs two adjacent elements (pack2x16float), half the bytes of
// kv_cache_f32.wgsl, with the same interface. Only where the adapter has SHADER_F16.
// Layout [kv_heads, capacity, head_dim]; e is an element index, even for the pair functions.

@group(0) @binding(K_CACHE_BINDING) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(V_CACHE_BINDING) var<storage, read_write> v_cache: array<u32>;

fn load_k(e: u32) -> vec2<f32> {
    return unpack2x16float(k_cache[e / 2u]);
}

fn load_v(e: u32) -> vec2<f32> {
    return unpack2x16float(v_cache[e / 2u]);
}

fn store_k(e: u32, v: vec2<f32>) {
    k_cache[e / 2u] = pack2x16float(v);
}

fn store_v(e: u32, v: vec2<f32>) {
    v_cache[e / 2u] = pack2x16float(v);
}
