//! The router's top-k and softmax, once per layer: route = [ids[k], weights[k]].

use super::moe::check_routing;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "router_topk_f32",
    /// `route` [2 k] (ids, then weights as f32 bits) from the router's `logits` [n_experts].
    pub struct RouterTopk { n_experts: u32, k: u32 }
    padding { _pad0: u32, _pad1: u32 }
    buffers { logits: Read, route: ReadWrite }
}

impl RouterTopk<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let (e, k) = (self.n_experts, self.k);
        check_routing(SHADER, e, k)?;
        need(&[(self.logits, e as u64 * 4), (self.route, 2 * k as u64 * 4)])?;
        self.bindings()
            .build(gpu, &[], &self.params(), &self.route.label, [1, 1, 1])
    }
}
