//! The memory plan: what a model takes on the GPU at a context of `ctx` positions, computed
//! from the same sizes the allocations use (weights split to the binding limit, the KV cache,
//! and the activations of decode, prefill and the sampler). `inspect` prints it without a
//! GPU; `generate` and `bench` print it before they allocate.

use serde::Serialize;

use crate::checkpoint::TensorId;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::{Gpu, Tuning};
use crate::kernels::matvec_f32_bf16w;
use crate::kernels::moe::Routing;
use crate::model::{decode, kv_cache, prefill, sampler, weights};

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct MemoryPlan {
    pub weights: u64,
    pub kv_cache: u64,
    /// The RoPE table and the activation buffers of decode, prefill (with its MoE routing) and
    /// the sampler.
    pub activations: u64,
}

impl MemoryPlan {
    /// For a context of `ctx`, prefill steps of `chunk` tokens, `kv_element_bytes` per KV
    /// element, buffers of at most `max_binding` bytes, the matvec split of `tuning`, and
    /// prefill on cooperative matrices (`coop`) or not.
    pub fn new(
        c: &ModelConfig,
        ctx: usize,
        chunk: usize,
        kv_element_bytes: u64,
        max_binding: u64,
        tuning: &Tuning,
        coop: bool,
    ) -> Result<MemoryPlan> {
        let plans = weights::plan(c, max_binding)?;
        let weights = plans.iter().map(|p| p.gpu_bytes()).sum();
        let lm_head = plans
            .iter()
            .find(|p| p.label == TensorId::LmHead.hf_name())
            .map_or(0, |p| {
                (p.parts.iter())
                    .map(|&(_, rows)| matvec_f32_bf16w::workgroups_with(tuning, rows as u32) as u64)
                    .sum()
            });
        let chunk = prefill::fitting_chunk(c, chunk, max_binding).clamp(1, ctx.max(1));
        let rope = ctx as u64 * c.head_dim as u64 * 4;
        let activations = rope
            + decode::Buffers::sizes(c, ctx).total()
            + prefill::Buffers::sizes(c, chunk, coop).total()
            + prefill::weight_shift_bytes(c, coop)
            + Routing::bytes(
                chunk as u32,
                c.experts_per_token as u32,
                c.num_experts as u32,
            )
            + sampler::bytes(c, lm_head, 1);
        Ok(MemoryPlan {
            weights,
            kv_cache: kv_cache::bytes(c, ctx, chunk, kv_element_bytes),
            activations,
        })
    }

    /// For `gpu`'s KV element type, binding limit, tuning and prefill path, at the default
    /// prefill step.
    pub fn on(gpu: &Gpu, c: &ModelConfig, ctx: usize) -> Result<MemoryPlan> {
        let p = gpu.precision();
        let kv = p.kv.element_bytes();
        let limit = gpu.max_binding().min(gpu.max_buffer());
        let (chunk, tuning) = (prefill::DEFAULT_CHUNK, gpu.tuning());
        MemoryPlan::new(c, ctx, chunk, kv, limit, &tuning, p.coop)
    }

    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.activations
    }
}
