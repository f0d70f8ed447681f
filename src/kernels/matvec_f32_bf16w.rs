//! bf16-weight matrix times one f32 vector, with optional fused RMSNorm, bias and residual add.

use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "matvec_f32_bf16w";
/// Output rows per workgroup (ROWS in the shader).
const ROWS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub k8: u32,
    pub out_offset: u32,
    pub eps: f32,
}

/// One matvec over one row-part of a weight matrix.
pub struct Matvec<'a> {
    /// bf16 [rows, k] (this part's rows).
    pub w: &'a GpuBuffer,
    pub rows: u32,
    pub k: u32,
    /// Index of this part's first row in `out` and `bias`.
    pub out_offset: u32,
    /// f32 [k].
    pub x: &'a GpuBuffer,
    /// RMSNorm gain f32 [k] and eps: normalise x first.
    pub norm: Option<(&'a GpuBuffer, f32)>,
    /// f32 [out_offset + rows].
    pub bias: Option<&'a GpuBuffer>,
    /// Add into `out` (the residual stream) instead of overwriting it.
    pub residual: bool,
    /// f32 [out_offset + rows].
    pub out: &'a GpuBuffer,
}

pub fn dispatch(gpu: &Gpu, m: &Matvec<'_>) -> Result<Dispatch> {
    if m.k % 8 != 0 {
        return Err(Error::Shape {
            what: format!("{SHADER}: '{}' row length", m.w.label),
            expected: "a multiple of 8".into(),
            actual: m.k.to_string(),
        });
    }
    need(m.w, m.rows as u64 * m.k as u64 * 2, SHADER)?;
    need(m.x, m.k as u64 * 4, SHADER)?;
    let end = (m.out_offset + m.rows) as u64 * 4;
    need(m.out, end, SHADER)?;
    let dummy = gpu.dummy()?;
    let gain = match m.norm {
        Some((g, _)) => {
            need(g, m.k as u64 * 4, SHADER)?;
            g
        }
        None => dummy,
    };
    let bias = match m.bias {
        Some(b) => {
            need(b, end, SHADER)?;
            b
        }
        None => dummy,
    };
    let params = Params {
        rows: m.rows,
        k8: m.k / 8,
        out_offset: m.out_offset,
        eps: m.norm.map(|(_, e)| e).unwrap_or(0.0),
    };
    let constants = [
        ("NORM", m.norm.is_some() as u32 as f64),
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
            gain.binding(),
            bias.binding(),
            m.out.binding(),
        ],
        gpu.grid(m.rows.div_ceil(ROWS)),
    )
}
