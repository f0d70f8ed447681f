//! Merges attention_decode_f32's chunk partials and the sink into each head's output.

use super::{attention_decode_f32, build, need, StepBuffer};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "attention_combine_f32";

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_heads: u32,
    pub head_dim: u32,
    pub window: u32,
    pub chunk: u32,
}

#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    n_heads: u32,
    head_dim: u32,
    window: u32,
    step: &StepBuffer,
    partials: &GpuBuffer,
    sinks: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<Dispatch> {
    need(sinks, n_heads as u64 * 4, SHADER)?;
    need(out, n_heads as u64 * head_dim as u64 * 4, SHADER)?;
    let params = Params {
        n_heads,
        head_dim,
        window,
        chunk: attention_decode_f32::CHUNK,
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &out.label,
        &[
            step.buffer.as_entire_binding(),
            partials.binding(),
            sinks.binding(),
            out.binding(),
        ],
        [n_heads, 1, 1],
    )
}
