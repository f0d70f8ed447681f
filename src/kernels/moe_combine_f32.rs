//! MoE decode, last step: `x += y[0] + ... + y[k-1]`, in slot order.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "moe_combine_f32",
    /// Adds the `k` weighted expert outputs `y` f32 [k, hidden] to the residual stream `x`
    /// f32 [hidden].
    pub struct MoeCombine { hidden: u32, k: u32 }
    padding { _pad0: u32, _pad1: u32 }
    buffers { y: Read, x: ReadWrite }
}

impl MoeCombine<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let h = self.hidden as u64 * 4;
        need(&[(self.y, self.k as u64 * h), (self.x, h)])?;
        let grid = [self.hidden.div_ceil(256), 1, 1];
        self.bindings()
            .build(gpu, &[], &self.params(), &self.x.label, grid)
    }
}
