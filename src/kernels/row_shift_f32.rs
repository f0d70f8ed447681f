//! Prefill on cooperative matrices: per token, the power of two that keeps its activations
//! within f16's range, and the shifted activations as the two f16 parts that
//! moe_gate_up_prefill_f16_mf4w and matmul_f16_bf16w load.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "row_shift_f32",
    /// `shift[t]` (u32 [n_tokens]): the smallest s >= 0 with max|x[t]| 2^-s < 2^15, for
    /// `x` f32 [n_tokens, hidden]; `x16` ([n_tokens, hidden / 4] runs of 4 hi then 4 lo
    /// f16, 4 bytes a value): x[t] 2^-shift[t] in f16_split's two parts.
    pub struct RowShift { n_tokens: u32, hidden: u32 }
    padding { _pad1: u32, _pad2: u32 }
    buffers { x: Read, shift: ReadWrite, x16: ReadWrite }
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
        let values = t * self.hidden as u64 * 4;
        need(&[(self.x, values), (self.shift, t * 4), (self.x16, values)])?;
        let grid = gpu.grid(self.n_tokens);
        self.bindings()
            .build(gpu, &[], &self.params(), &self.shift.label, grid)
    }
}
