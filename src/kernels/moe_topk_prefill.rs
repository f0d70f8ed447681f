//! MoE prefill, first step: each token's top-k of its router logits and their softmax
//! weights, a workgroup a token (moe_route_prefill then groups them by expert).

use super::moe::{check_routing, MoeShape, Routing};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_topk_prefill",
    params { n_tokens: u32, n_experts: u32, k: u32, _pad0: u32 }
    bindings { router_logits: Read, weights: ReadWrite, experts: ReadWrite }
}

/// Tokens per grid row (GRID_X in the shader).
const GRID_X: u32 = 32768;

/// `routing.experts` and `routing.weights` [n_tokens * k] from `logits` [n_tokens, n_experts].
pub struct MoeTopKPrefill<'a> {
    pub shape: MoeShape,
    pub n_tokens: u32,
    pub logits: &'a GpuBuffer,
    pub routing: &'a Routing,
}

impl MoeTopKPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape { n_experts, k, .. } = self.shape;
        check_routing(SHADER, n_experts, k)?;
        let entries = self.n_tokens as u64 * k as u64 * 4;
        let r = self.routing;
        need(&[
            (self.logits, self.n_tokens as u64 * n_experts as u64 * 4),
            (&r.weights, entries),
            (&r.experts, entries),
        ])?;
        let params = Params {
            n_tokens: self.n_tokens,
            n_experts,
            k,
            _pad0: 0,
        };
        Bindings {
            router_logits: self.logits.binding(),
            weights: r.weights.binding(),
            experts: r.experts.binding(),
        }
        .build(
            gpu,
            &[],
            &params,
            "moe.topk",
            [self.n_tokens.min(GRID_X), self.n_tokens.div_ceil(GRID_X), 1],
        )
    }
}
