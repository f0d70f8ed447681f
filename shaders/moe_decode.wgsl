// What the two decode expert kernels (moe_gate_up_f32_mf4w, moe_down_f32_mf4w) declare alike:
// the sizes of the weight stream, the token's routing, the experts' biases and the staged
// input in workgroup memory (gate_up: xn; down: every slot's act). Each computes N rows of K
// inputs per selected expert (gate_up: N = 2 inter, K = hidden; down: N = hidden, K = inter).

const WG: u32 = 256u;
const R: u32 = 4u;               // rows per group step (gate_up: two gate/up pairs)

override ROWS_PER_WG: u32 = 32u;
// Read the activations straight from global memory (L1) instead of staging them in workgroup
// memory: no staging phase, and workgroup memory stops limiting occupancy.
override X_GLOBAL: bool = false;
override X_VEC4: u32 = 720u;     // the staged input's floats / 4

@group(0) @binding(1) var<storage, read> route: array<u32>;          // [2 k]: ids, weights
@group(0) @binding(5) var<storage, read> bias: array<f32>;           // [n_part, N]

var<workgroup> xs: array<vec4<f32>, X_VEC4>;
