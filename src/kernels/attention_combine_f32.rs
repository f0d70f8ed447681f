//! Merges attention_decode_f32's chunk partials and the sink into each head's output.

use super::attention_decode_f32;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "attention_combine_f32",
    /// `out` f32 [n_heads, head_dim] from the `partials` f32 [chunks, n_heads, head_dim + 2] of
    /// the query at the step's position and the `sinks` f32 [n_heads]; `window` 0 is full
    /// causal attention, otherwise the sliding window.
    pub struct AttentionCombine { n_heads: u32, head_dim: u32, window: u32 }
    constants { chunk: u32 = attention_decode_f32::CHUNK }
    padding {}
    buffers { step: Uniform, partials: Read, sinks: Read, out: ReadWrite }
}

impl AttentionCombine<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let heads = self.n_heads as u64;
        need(&[
            (self.sinks, heads * 4),
            (self.out, heads * self.head_dim as u64 * 4),
        ])?;
        let grid = [self.n_heads, 1, 1];
        self.bindings()
            .build(gpu, &[], &self.params(), &self.out.label, grid)
    }
}
