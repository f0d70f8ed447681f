//! MoE prefill, last step: `x[t] += sum_j w[t, j] y[entry(t, j)]`, in slot order.

use super::moe::{MoeShape, Routing};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_combine_prefill_f32",
    params { n_tokens: u32, hidden: u32, k: u32, _pad: u32 }
    bindings { y: Read, weights: Read, slot_pos: Read, x: ReadWrite }
}

/// Adds each token's weighted expert outputs in `y` to the residual stream `x` [n_tokens, hidden].
pub struct MoeCombinePrefill<'a> {
    pub shape: MoeShape,
    pub n_tokens: u32,
    pub y: &'a GpuBuffer,
    pub routing: &'a Routing,
    pub x: &'a GpuBuffer,
}

impl MoeCombinePrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape { hidden, k, .. } = self.shape;
        need(&[(self.x, self.n_tokens as u64 * hidden as u64 * 4)])?;
        let params = Params {
            n_tokens: self.n_tokens,
            hidden,
            k,
            _pad: 0,
        };
        let r = self.routing;
        Bindings {
            y: self.y.binding(),
            weights: r.weights.binding(),
            slot_pos: r.slot_pos.binding(),
            x: self.x.binding(),
        }
        .build(
            gpu,
            &[],
            &params,
            "moe.combine",
            gpu.grid((self.n_tokens * hidden).div_ceil(256)),
        )
    }
}
