//! The MoE router's top-k for one token: the k largest of router_f32_bf16w's logits (ties to
//! the lowest expert) and the softmax over them: route = [ids[k], weights[k]].

use super::moe::check_routing;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "router_topk_f32",
    params { n_experts: u32, k: u32, _pad0: u32, _pad1: u32 }
    bindings { logits: Read, route: ReadWrite }
}

/// `route` [2 k] from `logits` [n_experts].
pub struct RouterTopK<'a> {
    pub n_experts: u32,
    /// Experts per token.
    pub k: u32,
    pub logits: &'a GpuBuffer,
    /// [2 k]: ids, then weights (f32 bits).
    pub route: &'a GpuBuffer,
}

impl RouterTopK<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let (e, k) = (self.n_experts, self.k);
        check_routing(SHADER, e, k)?;
        need(&[(self.logits, e as u64 * 4), (self.route, 2 * k as u64 * 4)])?;
        let params = Params {
            n_experts: e,
            k,
            ..Default::default()
        };
        Bindings {
            logits: self.logits.binding(),
            route: self.route.binding(),
        }
        .build(gpu, &[], &params, &self.route.label, [1, 1, 1])
    }
}
