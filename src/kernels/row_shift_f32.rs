//! Prefill on cooperative matrices: per token, the power of two that keeps its activations
//! within f16's range (moe_gate_up_prefill_f16_mf4w, matmul_f16_bf16w).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "row_shift_f32",
    /// `shift[t]` (u32 [n_tokens]): the smallest s >= 0 with max|x[t]| 2^-s < 2^15, for
    /// `x` f32 [n_tokens, hidden].
    pub struct RowShift { n_tokens: u32, hidden: u32 }
    padding { _pad1: u32, _pad2: u32 }
    buffers { x: Read, shift: ReadWrite }
}

impl RowShift<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        if self.hidden % 4 != 0 {
            return Err(crate::error::Error::Shape {
                what: format!("{SHADER}: hidden"),
                expected: "a multiple of 4".into(),
                actual: self.hidden.to_string(),
            });
        }
        let t = self.n_tokens as u64;
        need(&[(self.x, t * self.hidden as u64 * 4), (self.shift, t * 4)])?;
        let grid = gpu.grid(self.n_tokens);
        self.bindings()
            .build(gpu, &[], &self.params(), &self.shift.label, grid)
    }
}
