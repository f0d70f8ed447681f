//! MoE decode, last step: `x += y[0] + ... + y[k-1]`, in slot order.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_combine_f32",
    params { hidden: u32, k: u32, _pad0: u32, _pad1: u32 }
    bindings { y: Read, x: ReadWrite }
}

/// Adds the `k` weighted expert outputs `y` [k, hidden] to the residual stream `x` [hidden].
pub struct MoeCombine<'a> {
    pub hidden: u32,
    pub k: u32,
    pub y: &'a GpuBuffer,
    pub x: &'a GpuBuffer,
}

impl MoeCombine<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let h = self.hidden as u64 * 4;
        need(&[(self.y, self.k as u64 * h), (self.x, h)])?;
        let params = Params {
            hidden: self.hidden,
            k: self.k,
            ..Default::default()
        };
        Bindings {
            y: self.y.binding(),
            x: self.x.binding(),
        }
        .build(
            gpu,
            &[],
            &params,
            &self.x.label,
            [self.hidden.div_ceil(256), 1, 1],
        )
    }
}
