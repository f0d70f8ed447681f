//! One module per WGSL kernel: its parameter struct (the same struct as in the shader), its
//! bindings and grid, and the shape checks made before anything is dispatched. Module, shader
//! file, entry point and CPU reference (src/reference) share the kernel's name.

pub mod attention_combine_f32;
pub mod attention_decode_f32;
pub mod attention_prefill_f32;
pub mod bandwidth_read;
pub mod dequant_f32_mf4w;
pub mod embed_f32_bf16w;
pub mod fill_random;
pub mod matmul_f32_bf16w;
pub mod matvec_f32_bf16w;
pub mod moe_down_f32_mf4w;
pub mod moe_gate_up_f32_mf4w;
pub mod moe_prefill;
pub mod rmsnorm_f32;
pub mod rope_kv_append_f32;
pub mod router_topk_f32;
pub mod sample_f32;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

/// The per-step uniform (shaders/step.wgsl): what changes from one submit to the next.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    pub pos0: u32,
    pub n_tokens: u32,
    pub sample_index: u32,
    pub _pad: u32,
}

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

/// (shader, size of the Rust parameter struct) for every kernel with a `Params` uniform; a test
/// checks each against the size naga computes for the WGSL struct.
pub const PARAMS_SIZES: &[(&str, usize)] = &[
    (
        dequant_f32_mf4w::SHADER,
        size_of::<dequant_f32_mf4w::Params>(),
    ),
    (
        embed_f32_bf16w::SHADER,
        size_of::<embed_f32_bf16w::Params>(),
    ),
    (rmsnorm_f32::SHADER, size_of::<rmsnorm_f32::Params>()),
    (
        matvec_f32_bf16w::SHADER,
        size_of::<matvec_f32_bf16w::Params>(),
    ),
    (
        rope_kv_append_f32::SHADER,
        size_of::<rope_kv_append_f32::Params>(),
    ),
    (
        attention_decode_f32::SHADER,
        size_of::<attention_decode_f32::Params>(),
    ),
    (
        attention_combine_f32::SHADER,
        size_of::<attention_combine_f32::Params>(),
    ),
    (
        moe_gate_up_f32_mf4w::SHADER,
        size_of::<moe_gate_up_f32_mf4w::Params>(),
    ),
    (
        moe_down_f32_mf4w::SHADER,
        size_of::<moe_down_f32_mf4w::Params>(),
    ),
    (sample_f32::SHADER, size_of::<sample_f32::Params>()),
    (
        matmul_f32_bf16w::SHADER,
        size_of::<matmul_f32_bf16w::Params>(),
    ),
    (
        attention_prefill_f32::SHADER,
        size_of::<attention_prefill_f32::Params>(),
    ),
    (moe_prefill::ROUTE, size_of::<moe_prefill::RouteParams>()),
    (moe_prefill::GATE_UP, size_of::<moe_prefill::GateUpParams>()),
    (moe_prefill::DOWN, size_of::<moe_prefill::DownParams>()),
    (
        moe_prefill::COMBINE,
        size_of::<moe_prefill::CombineParams>(),
    ),
    (fill_random::SHADER, size_of::<fill_random::Params>()),
    (
        router_topk_f32::SHADER,
        size_of::<router_topk_f32::Params>(),
    ),
    (bandwidth_read::SHADER, size_of::<bandwidth_read::Params>()),
];

/// Every shader that uses the Step uniform, with its size (checked against shaders/step.wgsl).
pub const STEP_SIZE: usize = size_of::<Step>();

/// Bytes per KV-cache element: 2 with `--kv f16`, else 4.
pub fn kv_element_bytes(gpu: &Gpu) -> u64 {
    if gpu.features().f16 {
        2
    } else {
        4
    }
}

/// Checks that `buf` holds at least `bytes` bytes before a kernel reads or writes them.
pub(crate) fn need(buf: &GpuBuffer, bytes: u64, kernel: &str) -> Result<()> {
    if buf.bytes < bytes {
        return Err(Error::Shape {
            what: format!("{kernel}: buffer '{}'", buf.label),
            expected: format!("at least {bytes} bytes"),
            actual: format!("{} bytes", buf.bytes),
        });
    }
    Ok(())
}

/// Creates the pipeline (cached), a uniform for `params`, and a bind group with the params at
/// binding 0 followed by `resources` at bindings 1, 2, ...
pub(crate) fn build<P: bytemuck::Pod>(
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
