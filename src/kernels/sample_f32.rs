//! Next-token choice on the GPU: greedy, or temperature with top-k / top-p and a seeded draw.

use super::{build, need, StepBuffer};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "sample_f32";

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub vocab: u32,
    /// 0: no top-k.
    pub top_k: u32,
    /// 0: greedy (argmax, lowest id among ties).
    pub temperature: f32,
    /// 1: no top-p.
    pub top_p: f32,
    pub seed: u32,
    /// Greedy: the per-workgroup maxima the lm_head matvec left in `partials` (0: none).
    pub n_partials: u32,
    pub _pad: [u32; 2],
}

/// Writes the chosen id to `tokens[0]` and `history[step.sample_index]`.
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    step: &StepBuffer,
    logits: &GpuBuffer,
    tokens: &GpuBuffer,
    history: &GpuBuffer,
    partials: Option<&GpuBuffer>,
) -> Result<Dispatch> {
    need(logits, params.vocab as u64 * 4, SHADER)?;
    need(tokens, 4, SHADER)?;
    let partials = match partials {
        Some(p) => {
            need(p, params.n_partials as u64 * 8, SHADER)?;
            p
        }
        None => gpu.dummy(0)?,
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &history.label,
        &[
            step.buffer.as_entire_binding(),
            logits.binding(),
            tokens.binding(),
            history.binding(),
            partials.binding(),
        ],
        [1, 1, 1],
    )
}
