//! bf16-weight matrix times one f32 vector, with optional fused RMSNorm, bias and residual
//! add, and the options the decode path needs: the normalised input written out (the MoE's
//! input) and per-workgroup maxima for the greedy sampler.

use super::{or_dummy, Bf16Rows};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer, Tuning};

kernel! {
    shader: "matvec_f32_bf16w",
    params {
        rows: u32, k8: u32, out_offset: u32, eps: f32, argmax_offset: u32,
        _pad0: u32, _pad1: u32, _pad2: u32,
    }
    bindings {
        w: Read, x: Read, gain: Read, bias: Read,
        out: ReadWrite, normed: ReadWrite, argmax: ReadWrite,
    }
}

/// How a matvec of `rows` rows is split: (rows per workgroup, rows a group takes at once).
/// Large matrices (lm_head) reuse each x chunk for 4 rows; smaller ones take 1 row at a time
/// so that there are enough workgroups to fill the GPU. [`crate::gpu::Tuning::matvec`]
/// overrides this for experiments.
pub fn split(gpu: &Gpu, rows: u32) -> (u32, u32) {
    split_with(&gpu.tuning(), rows)
}

/// [`split`] under `tuning`, for plans made without a device (the memory plan).
pub fn split_with(tuning: &Tuning, rows: u32) -> (u32, u32) {
    if let Some(split) = tuning.matvec {
        return split;
    }
    if rows >= 16384 {
        (16, 4)
    } else {
        (4, 1)
    }
}

/// Workgroups a matvec over `rows` rows uses (and so its entries in an argmax buffer).
pub fn workgroups(gpu: &Gpu, rows: u32) -> u32 {
    workgroups_with(&gpu.tuning(), rows)
}

/// [`workgroups`] under `tuning`.
pub fn workgroups_with(tuning: &Tuning, rows: u32) -> u32 {
    rows.div_ceil(split_with(tuning, rows).0)
}

/// One matvec over one row-part of a weight matrix.
pub struct Matvec<'a> {
    /// Its `row0` is also the part's first row in `out` and `bias`.
    pub w: Bf16Rows<'a>,
    /// f32 [k].
    pub x: &'a GpuBuffer,
    /// RMSNorm gain f32 [k] and eps: normalise x first.
    pub norm: Option<(&'a GpuBuffer, f32)>,
    /// f32 [row0 + rows].
    pub bias: Option<&'a GpuBuffer>,
    /// Add into `out` (the residual stream) instead of overwriting it.
    pub residual: bool,
    /// f32 [row0 + rows].
    pub out: &'a GpuBuffer,
    /// With `norm`: also write the normalised x (x * rsqrt * gain), f32 [k].
    pub normed_out: Option<&'a GpuBuffer>,
    /// Per-workgroup (max, row) pairs, [argmax_offset + workgroups] of (f32 bits, u32).
    pub argmax: Option<(&'a GpuBuffer, u32)>,
}

impl Matvec<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let w = &self.w;
        w.need_k_multiple(SHADER, 8)?;
        w.need(SHADER)?;
        let (rows, k) = (w.rows as u64, w.k as u64);
        let end = (w.row0 as u64 + rows) * 4;
        need(&[(self.x, k * 4), (self.out, end)])?;
        let gain = or_dummy(gpu, SHADER, self.norm.map(|(g, _)| g), k * 4, 0)?;
        let bias = or_dummy(gpu, SHADER, self.bias, end, 0)?;
        let normed = or_dummy(gpu, SHADER, self.normed_out, k * 4, 1)?;
        let wgs = workgroups(gpu, w.rows);
        let argmax_offset = self.argmax.map_or(0, |(_, off)| off);
        let argmax_bytes = (argmax_offset + wgs) as u64 * 8;
        let argmax = or_dummy(gpu, SHADER, self.argmax.map(|(a, _)| a), argmax_bytes, 2)?;
        let params = Params {
            rows: w.rows,
            k8: w.k / 8,
            out_offset: w.row0,
            eps: self.norm.map_or(0.0, |(_, e)| e),
            argmax_offset,
            ..Default::default()
        };
        let flag = |b: bool| b as u32 as f64;
        let (rows_per_wg, r) = split(gpu, w.rows);
        let constants = [
            ("ROWS_PER_WG", rows_per_wg as f64),
            ("R", r.clamp(1, 4) as f64),
            ("NORM", flag(self.norm.is_some())),
            ("BIAS", flag(self.bias.is_some())),
            ("RESIDUAL", flag(self.residual)),
            (
                "NORMED_OUT",
                flag(self.normed_out.is_some() && self.norm.is_some()),
            ),
            ("ARGMAX", flag(self.argmax.is_some())),
        ];
        Bindings {
            w: w.buffer.binding(),
            x: self.x.binding(),
            gain: gain.binding(),
            bias: bias.binding(),
            out: self.out.binding(),
            normed: normed.binding(),
            argmax: argmax.binding(),
        }
        .build(gpu, &constants, &params, &w.buffer.label, gpu.grid(wgs))
    }
}
