//! bf16-weight matrix times a batch of f32 token vectors (prefill) on cooperative matrices:
//! f16 operands, f32 accumulation (matmul_f32_bf16w's job on tensor cores).

use super::moe::coop_constants;
use super::{or_dummy, Bf16Rows};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "matmul_f16_bf16w",
    params {
        n_tokens: u32, rows: u32, k: u32, out_offset: u32, out_stride: u32,
        _pad0: u32, _pad1: u32, _pad2: u32,
    }
    bindings { w: Read, x16: Read, shift: Read, bias: Read, out: ReadWrite, w_shift: Read }
}

/// coop_tile's TM x TN tile and K step.
const TM: u32 = 64;
const TN: u32 = 128;
pub const KB: u32 = 64;

/// One matmul over one row-part of a weight matrix.
pub struct MatmulF16<'a> {
    /// Its `row0` is also the part's first column in `out` and row in `bias`.
    pub w: Bf16Rows<'a>,
    /// i32 [rows]: each of the part's rows' f16 shift (weight_shift_bf16w of `w`).
    pub w_shift: &'a GpuBuffer,
    pub n_tokens: u32,
    /// The tokens' activations [n_tokens, k] as two f16 parts after each token's shift
    /// (row_shift_f32's x16), 4 bytes a value.
    pub x16: &'a GpuBuffer,
    /// u32 [n_tokens]: each token's f16 shift (row_shift_f32).
    pub shift: &'a GpuBuffer,
    /// f32 [row0 + rows].
    pub bias: Option<&'a GpuBuffer>,
    pub residual: bool,
    /// f32 [n_tokens, out_stride]; this part writes columns row0 .. row0 + rows.
    pub out: &'a GpuBuffer,
    pub out_stride: u32,
}

impl MatmulF16<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let w = &self.w;
        w.need_k_multiple(SHADER, KB)?;
        w.need(SHADER)?;
        let (t, k) = (self.n_tokens as u64, w.k as u64);
        need(&[
            (self.x16, t * k * 4),
            (self.shift, t * 4),
            (self.w_shift, w.rows as u64 * 4),
            (self.out, t * self.out_stride as u64 * 4),
        ])?;
        let bias_bytes = (w.row0 + w.rows) as u64 * 4;
        let bias = or_dummy(gpu, SHADER, self.bias, bias_bytes, 0)?;
        let params = Params {
            n_tokens: self.n_tokens,
            rows: w.rows,
            k: w.k,
            out_offset: w.row0,
            out_stride: self.out_stride,
            ..Default::default()
        };
        let [wg] = coop_constants(gpu);
        let constants = [
            wg,
            ("BIAS", self.bias.is_some() as u32 as f64),
            ("RESIDUAL", self.residual as u32 as f64),
        ];
        let grid = [w.rows.div_ceil(TN), self.n_tokens.div_ceil(TM), 1];
        Bindings {
            w: w.buffer.binding(),
            x16: self.x16.binding(),
            shift: self.shift.binding(),
            bias: bias.binding(),
            out: self.out.binding(),
            w_shift: self.w_shift.binding(),
        }
        .build(gpu, &constants, &params, &w.buffer.label, grid)
    }
}
