//! One module per WGSL kernel, named after its shader: a descriptor struct whose `dispatch`
//! checks shapes and records the dispatch, the kernel's parameter struct (the same struct as
//! in the shader, private: callers fill the descriptor) and its binding table. Module, shader
//! file, entry point and CPU reference (src/reference) share the kernel's name. [`KERNELS`]
//! lists every kernel's declarations so that tests/registry.rs can compare them with the WGSL.

/// Declares a uniform struct shared with WGSL: `#[repr(C)]`, Pod, and its [`Layout`] (each
/// field's name, offset and Rust type) for the registry test.
macro_rules! uniform {
    ($(#[$m:meta])* $vis:vis struct $name:ident {
        $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }

        impl $name {
            pub(crate) const LAYOUT: $crate::kernels::Layout = $crate::kernels::Layout {
                name: stringify!($name),
                size: size_of::<$name>(),
                fields: &[$($crate::kernels::Field {
                    name: stringify!($field),
                    offset: core::mem::offset_of!($name, $field),
                    ty: stringify!($ty),
                }),*],
            };
        }
    };
}

/// What a descriptor holds for a binding of `$access`: the step uniform or a storage buffer.
macro_rules! binding_ref {
    (Uniform) => {
        $crate::kernels::StepBuffer
    };
    ($access:ident) => {
        $crate::gpu::GpuBuffer
    };
}

/// Declares a kernel: its shader, its `Params` uniform (binding 0) and the resources at
/// bindings 1, 2, ... by WGSL variable name and access, and a `need` that checks buffers in
/// the kernel's name; or, in the second form, also its descriptor, when that is the uniform's
/// fields and one buffer per binding. The `Bindings` struct it defines has
/// one field per binding, and its `build` binds them in the declared order, so the table the
/// registry test checks is the order the bind group gets.
macro_rules! kernel {
    (
        shader: $shader:literal,
        params { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }
        bindings { $($binding:ident : $access:ident),* $(,)? }
    ) => {
        pub const SHADER: &str = $shader;

        /// [`need`](crate::kernels::need) for this kernel: each buffer holds its byte count.
        #[allow(dead_code)]
        fn need(checks: &[(&$crate::gpu::GpuBuffer, u64)]) -> $crate::error::Result<()> {
            $crate::kernels::need(SHADER, checks)
        }

        uniform! {
            struct Params { $($(#[$fm])* $field: $ty),* }
        }

        struct Bindings<'a> {
            $($binding: wgpu::BindingResource<'a>),*
        }

        impl Bindings<'_> {
            fn build(
                self,
                gpu: &$crate::gpu::Gpu,
                constants: &[(&str, f64)],
                params: &Params,
                label: &str,
                workgroups: [u32; 3],
            ) -> $crate::error::Result<$crate::gpu::Dispatch> {
                let resources = [$(self.$binding),*];
                $crate::kernels::build(gpu, SHADER, constants, params, label, &resources, workgroups)
            }
        }

        /// What this module declares about its shader.
        pub const KERNEL: $crate::kernels::Kernel = $crate::kernels::Kernel {
            shader: SHADER,
            params: Params::LAYOUT,
            bindings: &[
                $crate::kernels::Binding { name: "params", access: $crate::kernels::Access::Uniform },
                $($crate::kernels::Binding {
                    name: stringify!($binding),
                    access: $crate::kernels::Access::$access,
                }),*
            ],
        };
    };
    // A kernel whose descriptor holds its uniform's fields (then fixed `constants` and
    // `padding`) and a buffer per binding (the step uniform for a `Uniform` one): the
    // descriptor struct, `params` and `bindings` come from the one field list.
    (
        shader: $shader:literal,
        $(#[$dm:meta])*
        pub struct $desc:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }
        $(constants { $($cfield:ident : $cty:ty = $cval:expr),* $(,)? })?
        padding { $($pad:ident : $pty:ty),* $(,)? }
        buffers { $($(#[$bm:meta])* $binding:ident : $access:ident),* $(,)? }
    ) => {
        kernel! {
            shader: $shader,
            params { $($field: $ty,)* $($($cfield: $cty,)*)? $($pad: $pty),* }
            bindings { $($binding: $access),* }
        }

        $(#[$dm])*
        pub struct $desc<'a> {
            $($(#[$fm])* pub $field: $ty,)*
            $($(#[$bm])* pub $binding: &'a binding_ref!($access),)*
        }

        impl<'a> $desc<'a> {
            /// The uniform: the descriptor's fields, the kernel's constants, then zero padding.
            fn params(&self) -> Params {
                Params {
                    $($field: self.$field,)*
                    $($($cfield: $cval,)*)?
                    $($pad: Default::default(),)*
                }
            }

            /// The descriptor's buffers at their bindings.
            fn bindings(&self) -> Bindings<'a> {
                Bindings { $($binding: self.$binding.binding()),* }
            }
        }
    };
}

pub mod attention_combine_f32;
pub mod attention_decode_f32;
pub mod attention_prefill_f16;
pub mod attention_prefill_f32;
pub mod bandwidth_read;
pub mod dequant_f32_mf4w;
pub mod embed_f32_bf16w;
pub mod fill_random;
pub mod matmul_f16_bf16w;
pub mod matmul_f32_bf16w;
pub mod matvec_f32_bf16w;
pub mod moe;
pub mod moe_combine_prefill_f32;
pub mod moe_down_f32_mf4w;
pub mod moe_down_prefill_f16_mf4w;
pub mod moe_down_prefill_f32_mf4w;
pub mod moe_gate_up_f32_mf4w;
pub mod moe_gate_up_prefill_f16_mf4w;
pub mod moe_gate_up_prefill_f32_mf4w;
pub mod moe_route_prefill;
pub mod moe_topk_prefill;
pub mod prefetch;
pub mod rmsnorm_f32;
pub mod rope_kv_append_f32;
pub mod router_f32_bf16w;
pub mod router_prefill_f32_bf16w;
pub mod router_topk_f32;
pub mod row_exp_mf4w;
pub mod row_shift_f32;
pub mod sample_f32;
pub mod weight_shift_bf16w;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

/// How a shader declares a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Uniform,
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

/// One binding of group 0, at the index of its place in [`Kernel::bindings`].
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// The WGSL variable's name.
    pub name: &'static str,
    pub access: Access,
}

/// One field of a uniform struct: its name, byte offset and Rust type as written.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub ty: &'static str,
}

/// A uniform struct as Rust lays it out.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// What one kernel module declares about its shader: the `Params` layout and every binding.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub shader: &'static str,
    pub params: Layout,
    pub bindings: &'static [Binding],
}

/// Every kernel, for the registry test.
pub const KERNELS: &[Kernel] = &[
    attention_combine_f32::KERNEL,
    attention_decode_f32::KERNEL,
    attention_prefill_f16::KERNEL,
    attention_prefill_f32::KERNEL,
    bandwidth_read::KERNEL,
    dequant_f32_mf4w::KERNEL,
    embed_f32_bf16w::KERNEL,
    fill_random::KERNEL,
    matmul_f16_bf16w::KERNEL,
    matmul_f32_bf16w::KERNEL,
    matvec_f32_bf16w::KERNEL,
    moe_combine_prefill_f32::KERNEL,
    moe_down_f32_mf4w::KERNEL,
    moe_down_prefill_f16_mf4w::KERNEL,
    moe_down_prefill_f32_mf4w::KERNEL,
    moe_gate_up_f32_mf4w::KERNEL,
    moe_gate_up_prefill_f16_mf4w::KERNEL,
    moe_gate_up_prefill_f32_mf4w::KERNEL,
    moe_route_prefill::KERNEL,
    moe_topk_prefill::KERNEL,
    row_exp_mf4w::KERNEL,
    row_shift_f32::KERNEL,
    rmsnorm_f32::KERNEL,
    rope_kv_append_f32::KERNEL,
    router_f32_bf16w::KERNEL,
    router_prefill_f32_bf16w::KERNEL,
    router_topk_f32::KERNEL,
    sample_f32::KERNEL,
    weight_shift_bf16w::KERNEL,
];

uniform! {
    /// The per-step uniform (shaders/step.wgsl): what changes from one submit to the next.
    pub struct Step {
        pub pos0: u32,
        pub n_tokens: u32,
        pub sample_index: u32,
        pub _pad: u32,
    }
}

/// [`Step`]'s layout, checked against shaders/step.wgsl.
pub const STEP: Layout = Step::LAYOUT;

/// A uniform buffer holding a [`Step`], rewritten before each submit.
pub struct StepBuffer {
    pub buffer: wgpu::Buffer,
}

impl StepBuffer {
    pub fn new(gpu: &Gpu, label: &str) -> Result<Self> {
        Ok(StepBuffer {
            buffer: gpu.uniform(label, &Step::default())?,
        })
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer.as_entire_binding()
    }

    pub fn set(&self, gpu: &Gpu, step: Step) {
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::bytes_of(&step));
    }

    /// The next submit's step: `n_tokens` tokens from position `pos0`, sample `sample_index`.
    pub fn set_at(&self, gpu: &Gpu, pos0: usize, n_tokens: usize, sample_index: usize) {
        self.set(
            gpu,
            Step {
                pos0: pos0 as u32,
                n_tokens: n_tokens as u32,
                sample_index: sample_index as u32,
                _pad: 0,
            },
        );
    }
}

/// Checks that each buffer holds at least its byte count before a kernel reads or writes it.
pub(crate) fn need(kernel: &str, checks: &[(&GpuBuffer, u64)]) -> Result<()> {
    for &(buf, bytes) in checks {
        if buf.bytes < bytes {
            return Err(Error::Shape {
                what: format!("{kernel}: buffer '{}'", buf.label),
                expected: format!("at least {bytes} bytes"),
                actual: format!("{} bytes", buf.bytes),
            });
        }
    }
    Ok(())
}

/// Creates the pipeline (cached), a uniform for `params`, and a bind group with the params at
/// binding 0 followed by `resources` at bindings 1, 2, ... (see [`kernel!`]).
fn build<P: bytemuck::Pod>(
    gpu: &Gpu,
    shader: &str,
    constants: &[(&str, f64)],
    params: &P,
    label: &str,
    resources: &[wgpu::BindingResource<'_>],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    let pipeline = gpu.pipeline(shader, shader, constants)?;
    let uniform = gpu.uniform(&format!("{label}.params"), params)?;
    let mut all = Vec::with_capacity(resources.len() + 1);
    all.push(uniform.as_entire_binding());
    all.extend(resources.iter().cloned());
    let bind_group = gpu.bind(&pipeline, label, &all)?;
    Ok(Dispatch {
        pipeline,
        bind_group,
        workgroups,
        target: label.to_string(),
    })
}

/// `buf` checked for `bytes`, or where it is absent the dummy buffer of `slot` for a binding
/// that the kernel's variant declares but does not use (see [`Gpu::dummy`]).
pub(crate) fn or_dummy<'a>(
    gpu: &'a Gpu,
    kernel: &str,
    buf: Option<&'a GpuBuffer>,
    bytes: u64,
    slot: usize,
) -> Result<&'a GpuBuffer> {
    match buf {
        Some(b) => {
            need(kernel, &[(b, bytes)])?;
            Ok(b)
        }
        None => gpu.dummy(slot),
    }
}

/// One row-part of a bf16 matrix as embed_f32_bf16w, matvec_f32_bf16w and matmul_f32_bf16w
/// read it: rows `row0 .. row0 + rows` of the whole matrix, `k` elements each.
#[derive(Clone, Copy)]
pub struct Bf16Rows<'a> {
    /// bf16 [rows, k] (this part's rows).
    pub buffer: &'a GpuBuffer,
    pub rows: u32,
    pub k: u32,
    /// Index of this part's first row in the whole matrix.
    pub row0: u32,
}

impl Bf16Rows<'_> {
    /// Checks that `buffer` holds the part's rows.
    pub(crate) fn need(&self, kernel: &str) -> Result<()> {
        need(
            kernel,
            &[(self.buffer, self.rows as u64 * self.k as u64 * 2)],
        )
    }

    /// Checks that this part is the whole matrix from its first row (the routers, whose
    /// rows are the experts, take the matrix in one buffer).
    pub(crate) fn need_whole(&self, kernel: &str) -> Result<()> {
        if self.row0 != 0 {
            return Err(Error::Shape {
                what: format!("{kernel}: '{}' first row", self.buffer.label),
                expected: "0 (the whole router matrix in one buffer)".into(),
                actual: self.row0.to_string(),
            });
        }
        Ok(())
    }

    /// Checks that `k` is a multiple of `multiple` (the kernel's step along a row).
    pub(crate) fn need_k_multiple(&self, kernel: &str, multiple: u32) -> Result<()> {
        if self.k % multiple != 0 {
            return Err(Error::Shape {
                what: format!("{kernel}: '{}' row length", self.buffer.label),
                expected: format!("a multiple of {multiple}"),
                actual: self.k.to_string(),
            });
        }
        Ok(())
    }
}

/// One layer's attention shape, as the RoPE and attention kernels read `qkv` and the cache.
#[derive(Clone, Copy, Debug)]
pub struct AttentionLayout {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    /// Positions the KV cache holds (slot = position % capacity).
    pub capacity: u32,
    /// 0: full causal attention; otherwise the sliding window.
    pub window: u32,
    /// Floats per token in `qkv` (q, then k, then v).
    pub qkv_stride: u32,
}

impl AttentionLayout {
    /// The softmax scale, 1 / sqrt(head_dim).
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Bytes of one layer's K (or V) cache in the device's KV element type.
    pub fn cache_bytes(&self, gpu: &Gpu) -> u64 {
        let elements = self.n_kv_heads as u64 * self.capacity as u64 * self.head_dim as u64;
        elements * gpu.precision().kv.element_bytes()
    }
}

/// What the RoPE and attention kernels of one layer share in a step: the layout, the step
/// uniform, the step's q, k and v, and the layer's KV cache.
#[derive(Clone, Copy)]
pub struct AttentionStep<'a> {
    pub layout: AttentionLayout,
    pub step: &'a StepBuffer,
    /// f32 [tokens, qkv_stride].
    pub qkv: &'a GpuBuffer,
    /// [n_kv_heads, capacity, head_dim] in the KV element type.
    pub k_cache: &'a GpuBuffer,
    pub v_cache: &'a GpuBuffer,
}

impl<'a> AttentionStep<'a> {
    /// Checks `qkv` for `tokens` tokens and both caches for the layout; yields the step
    /// uniform, `qkv`, `k_cache` and `v_cache` bindings, which every attention kernel declares.
    pub(crate) fn bind(
        &self,
        gpu: &Gpu,
        kernel: &str,
        tokens: u32,
    ) -> Result<[wgpu::BindingResource<'a>; 4]> {
        let qkv_bytes = tokens as u64 * self.layout.qkv_stride as u64 * 4;
        let cache = self.layout.cache_bytes(gpu);
        need(
            kernel,
            &[
                (self.qkv, qkv_bytes),
                (self.k_cache, cache),
                (self.v_cache, cache),
            ],
        )?;
        Ok([
            self.step.buffer.as_entire_binding(),
            self.qkv.binding(),
            self.k_cache.binding(),
            self.v_cache.binding(),
        ])
    }
}
