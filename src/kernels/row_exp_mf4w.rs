//! Prefill on cooperative matrices: per row of an MXFP4 expert matrix, its largest block
//! scale byte (the row scale of moe_prefill_coop's tiles), computed once per model.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "row_exp_mf4w",
    params { rows: u32, nb: u32, _pad0: u32, _pad1: u32 }
    bindings { scales: Read, row_exp: ReadWrite }
}

/// Invocations per workgroup (the shader's WG).
const WG: u32 = 64;

/// Bytes of the row scales of `rows` rows: a byte each, in whole words.
pub fn bytes(rows: u64) -> u64 {
    rows.div_ceil(4) * 4
}

/// `row_exp` (u8 [rows] in u32 words) from `scales` (u8 [rows, cols / 32] in u32 words) of
/// one stored part of an expert matrix.
pub struct RowExp<'a> {
    pub scales: &'a GpuBuffer,
    pub rows: u32,
    /// Input width of each row (a multiple of 32).
    pub cols: u32,
    pub row_exp: &'a GpuBuffer,
}

impl RowExp<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let nb = self.cols / 32;
        need(&[
            (self.scales, self.rows as u64 * nb as u64),
            (self.row_exp, bytes(self.rows as u64)),
        ])?;
        let params = Params {
            rows: self.rows,
            nb,
            ..Default::default()
        };
        let grid = gpu.grid(self.rows.div_ceil(4).div_ceil(WG));
        Bindings {
            scales: self.scales.binding(),
            row_exp: self.row_exp.binding(),
        }
        .build(gpu, &[], &params, &self.row_exp.label, grid)
    }
}
