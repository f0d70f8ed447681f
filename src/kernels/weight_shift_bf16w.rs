//! Prefill on cooperative matrices: per row of a bf16 weight matrix, the power of two that
//! keeps it within f16's range (matmul_f16_bf16w), computed once per model.

use super::Bf16Rows;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "weight_shift_bf16w",
    params { rows: u32, k: u32, _pad0: u32, _pad1: u32 }
    bindings { w: Read, w_shift: ReadWrite }
}

/// `w_shift[n]` (i32 [rows]) for each row of one row-part of a weight matrix.
pub struct WeightShift<'a> {
    pub w: Bf16Rows<'a>,
    pub w_shift: &'a GpuBuffer,
}

impl WeightShift<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let w = &self.w;
        w.need_k_multiple(SHADER, 8)?;
        w.need(SHADER)?;
        need(&[(self.w_shift, w.rows as u64 * 4)])?;
        let params = Params {
            rows: w.rows,
            k: w.k,
            ..Default::default()
        };
        let grid = gpu.grid(w.rows);
        Bindings {
            w: w.buffer.binding(),
            w_shift: self.w_shift.binding(),
        }
        .build(gpu, &[], &params, &self.w_shift.label, grid)
    }
}
