//! bf16-weight matrix times a batch of f32 token vectors (prefill), with bias and residual.

use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "matmul_f32_bf16w";
const TM: u32 = 64;
const TN: u32 = 64;
pub const TK: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_tokens: u32,
    pub rows: u32,
    pub k: u32,
    pub out_offset: u32,
    pub out_stride: u32,
    pub _pad: [u32; 3],
}

/// One matmul over one row-part of a weight matrix.
pub struct Matmul<'a> {
    /// bf16 [rows, k] (this part's rows).
    pub w: &'a GpuBuffer,
    pub rows: u32,
    pub k: u32,
    pub n_tokens: u32,
    /// f32 [n_tokens, k].
    pub x: &'a GpuBuffer,
    /// f32 [out_offset + rows].
    pub bias: Option<&'a GpuBuffer>,
    pub residual: bool,
    /// f32 [n_tokens, out_stride]; this part writes columns out_offset .. out_offset + rows.
    pub out: &'a GpuBuffer,
    pub out_offset: u32,
    pub out_stride: u32,
}

pub fn dispatch(gpu: &Gpu, m: &Matmul<'_>) -> Result<Dispatch> {
    if m.k % TK != 0 {
        return Err(Error::Shape {
            what: format!("{SHADER}: '{}' row length", m.w.label),
            expected: format!("a multiple of {TK}"),
            actual: m.k.to_string(),
        });
    }
    need(m.w, m.rows as u64 * m.k as u64 * 2, SHADER)?;
    need(m.x, m.n_tokens as u64 * m.k as u64 * 4, SHADER)?;
    need(m.out, m.n_tokens as u64 * m.out_stride as u64 * 4, SHADER)?;
    let bias = match m.bias {
        Some(b) => {
            need(b, (m.out_offset + m.rows) as u64 * 4, SHADER)?;
            b
        }
        None => gpu.dummy(0)?,
    };
    let params = Params {
        n_tokens: m.n_tokens,
        rows: m.rows,
        k: m.k,
        out_offset: m.out_offset,
        out_stride: m.out_stride,
        _pad: [0; 3],
    };
    let constants = [
        ("BIAS", m.bias.is_some() as u32 as f64),
        ("RESIDUAL", m.residual as u32 as f64),
    ];
    build(
        gpu,
        SHADER,
        &constants,
        &params,
        &m.w.label,
        &[
            m.w.binding(),
            m.x.binding(),
            bias.binding(),
            m.out.binding(),
        ],
        [m.rows.div_ceil(TN), m.n_tokens.div_ceil(TM), 1],
    )
}
