//! MoE prefill on cooperative matrices: per token, the power of two that keeps its
//! activations within f16's range in moe_gate_up_prefill_f16_mf4w.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "moe_x_shift_prefill",
    /// `shift[t]` (u32 [n_tokens]): the smallest s >= 0 with max|xn[t]| 2^-s < 2^15, for
    /// `xn` f32 [n_tokens, hidden].
    pub struct MoeXShiftPrefill { n_tokens: u32, hidden: u32 }
    padding { _pad1: u32, _pad2: u32 }
    buffers { xn: Read, shift: ReadWrite }
}

impl MoeXShiftPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        if self.hidden % 4 != 0 {
            return Err(crate::error::Error::Shape {
                what: format!("{SHADER}: hidden"),
                expected: "a multiple of 4".into(),
                actual: self.hidden.to_string(),
            });
        }
        let t = self.n_tokens as u64;
        need(&[(self.xn, t * self.hidden as u64 * 4), (self.shift, t * 4)])?;
        let grid = gpu.grid(self.n_tokens);
        self.bindings()
            .build(gpu, &[], &self.params(), &self.shift.label, grid)
    }
}
