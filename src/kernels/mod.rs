//! One module per WGSL kernel: its parameter struct (the same struct as in the shader), its
//! bindings, and how it is dispatched. Module, shader file, entry point and CPU reference
//! (src/reference) share the kernel's name.

pub mod dequant_f32_mf4w;

/// (shader, size of the Rust parameter struct) for every kernel with a `Params` uniform; a test
/// checks each against the size naga computes for the WGSL struct.
pub const PARAMS_SIZES: &[(&str, usize)] = &[(
    dequant_f32_mf4w::SHADER,
    std::mem::size_of::<dequant_f32_mf4w::Params>(),
)];
