//! Merges attention_decode_f32's chunk partials and the sink into each head's output.

use super::{attention_decode_f32, StepBuffer};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "attention_combine_f32",
    params { n_heads: u32, head_dim: u32, window: u32, chunk: u32 }
    bindings { step: Uniform, partials: Read, sinks: Read, out: ReadWrite }
}

/// `out` [n_heads, head_dim] from the partials of the query at the step's position.
pub struct AttentionCombine<'a> {
    pub n_heads: u32,
    pub head_dim: u32,
    /// 0: full causal attention; otherwise the sliding window.
    pub window: u32,
    pub step: &'a StepBuffer,
    /// f32 [chunks, n_heads, head_dim + 2].
    pub partials: &'a GpuBuffer,
    /// f32 [n_heads].
    pub sinks: &'a GpuBuffer,
    pub out: &'a GpuBuffer,
}

impl AttentionCombine<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let heads = self.n_heads as u64;
        need(&[
            (self.sinks, heads * 4),
            (self.out, heads * self.head_dim as u64 * 4),
        ])?;
        let params = Params {
            n_heads: self.n_heads,
            head_dim: self.head_dim,
            window: self.window,
            chunk: attention_decode_f32::CHUNK,
        };
        Bindings {
            step: self.step.buffer.as_entire_binding(),
            partials: self.partials.binding(),
            sinks: self.sinks.binding(),
            out: self.out.binding(),
        }
        .build(gpu, &[], &params, &self.out.label, [self.n_heads, 1, 1])
    }
}
