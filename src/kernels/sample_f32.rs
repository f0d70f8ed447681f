//! Next-token choice on the GPU: greedy, or temperature with top-k / top-p and a seeded draw.

use super::{or_dummy, StepBuffer};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "sample_f32",
    params {
        vocab: u32, top_k: u32, temperature: f32, top_p: f32, seed: u32, n_partials: u32,
        _pad1: u32, _pad2: u32,
    }
    bindings { step: Uniform, logits: Read, tokens: ReadWrite, history: ReadWrite, partials: Read }
}

/// Writes the chosen id to `tokens[0]` and `history[step.sample_index]`.
pub struct Sample<'a> {
    pub vocab: u32,
    /// 0: no top-k.
    pub top_k: u32,
    /// 0: greedy (argmax, lowest id among ties).
    pub temperature: f32,
    /// 1: no top-p.
    pub top_p: f32,
    pub seed: u32,
    pub step: &'a StepBuffer,
    /// f32 [vocab].
    pub logits: &'a GpuBuffer,
    pub tokens: &'a GpuBuffer,
    pub history: &'a GpuBuffer,
    /// Greedy: the per-workgroup (max, row) pairs the lm_head matvec left, and their count.
    pub partials: Option<(&'a GpuBuffer, u32)>,
}

impl Sample<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        need(&[(self.logits, self.vocab as u64 * 4), (self.tokens, 4)])?;
        let n_partials = self.partials.map_or(0, |(_, n)| n);
        let partials_bytes = n_partials as u64 * 8;
        let partials = or_dummy(
            gpu,
            SHADER,
            self.partials.map(|(p, _)| p),
            partials_bytes,
            0,
        )?;
        let params = Params {
            vocab: self.vocab,
            top_k: self.top_k,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            n_partials,
            ..Default::default()
        };
        Bindings {
            step: self.step.buffer.as_entire_binding(),
            logits: self.logits.binding(),
            tokens: self.tokens.binding(),
            history: self.history.binding(),
            partials: partials.binding(),
        }
        .build(gpu, &[], &params, &self.history.label, [1, 1, 1])
    }
}
