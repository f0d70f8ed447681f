//! bf16-weight matrix times one f32 vector, with optional fused RMSNorm, bias and residual
//! add, and the options the decode path needs: the normalised input written out (the MoE's
//! input) and per-workgroup maxima for the greedy sampler.

use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "matvec_f32_bf16w";

/// How a matvec of `rows` rows is split: (rows per workgroup, rows a group takes at once).
/// Large matrices (lm_head) reuse each x chunk for 4 rows; smaller ones take 1 row at a time
/// so that there are enough workgroups to fill the GPU. OSS_WGPU_TUNE_MATVEC="ROWS,R" overrides
/// this for experiments.
pub fn split(rows: u32) -> (u32, u32) {
    if let Some((a, b)) = std::env::var("OSS_WGPU_TUNE_MATVEC").ok().and_then(|v| {
        v.split_once(',')
            .map(|(a, b)| (a.trim().parse().ok(), b.trim().parse().ok()))
    }) {
        if let (Some(a), Some(b)) = (a, b) {
            return (a, b);
        }
    }
    if rows >= 16384 {
        (16, 4)
    } else {
        (4, 1)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub k8: u32,
    pub out_offset: u32,
    pub eps: f32,
    pub argmax_offset: u32,
    pub _pad: [u32; 3],
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
    /// With `norm`: also write the normalised x (x * rsqrt * gain), f32 [k].
    pub normed_out: Option<&'a GpuBuffer>,
    /// Per-workgroup (max, row) pairs, [argmax_offset + workgroups] of (f32 bits, u32).
    pub argmax: Option<(&'a GpuBuffer, u32)>,
}

/// Workgroups a matvec over `rows` rows uses (and so its entries in an argmax buffer).
pub fn workgroups(rows: u32) -> u32 {
    rows.div_ceil(split(rows).0)
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
    let dummy = gpu.dummy(0)?;
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
    let normed = match m.normed_out {
        Some(n) => {
            need(n, m.k as u64 * 4, SHADER)?;
            n
        }
        None => gpu.dummy(1)?,
    };
    let (argmax, argmax_offset) = match m.argmax {
        Some((a, off)) => {
            need(a, (off + workgroups(m.rows)) as u64 * 8, SHADER)?;
            (a, off)
        }
        None => (gpu.dummy(2)?, 0),
    };
    let params = Params {
        rows: m.rows,
        k8: m.k / 8,
        out_offset: m.out_offset,
        eps: m.norm.map(|(_, e)| e).unwrap_or(0.0),
        argmax_offset,
        _pad: [0; 3],
    };
    let flag = |b: bool| b as u32 as f64;
    let (rows_per_wg, r) = split(m.rows);
    let constants = [
        ("ROWS_PER_WG", rows_per_wg as f64),
        ("R", r.clamp(1, 4) as f64),
        ("NORM", flag(m.norm.is_some())),
        ("BIAS", flag(m.bias.is_some())),
        ("RESIDUAL", flag(m.residual)),
        (
            "NORMED_OUT",
            flag(m.normed_out.is_some() && m.norm.is_some()),
        ),
        ("ARGMAX", flag(m.argmax.is_some())),
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
            normed.binding(),
            argmax.binding(),
        ],
        gpu.grid(workgroups(m.rows)),
    )
}
