//! MoE decode, first half: MXFP4 gate_up and clamped SwiGLU for each selected expert.

use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "moe_gate_up_f32_mf4w";
/// gate_up rows per workgroup (the ROWS_PER_WG override; even).
pub const ROWS_PER_WG: u32 = 32;
pub const MAX_HIDDEN: u32 = 4096;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub hidden: u32,
    pub inter: u32,
    pub k: u32,
    pub e0: u32,
    pub n_part: u32,
    pub limit: f32,
    pub _pad: [u32; 2],
}

/// Whether the MoE decode kernels read activations from global memory rather than a
/// workgroup-memory tile (OSS_WGPU_TUNE_MOE=global, for experiments).
pub fn x_global() -> bool {
    std::env::var("OSS_WGPU_TUNE_MOE").is_ok_and(|v| v.trim() == "global")
}

/// The expert weights of one part: experts `e0 .. e0 + n_part`.
pub struct ExpertPart<'a> {
    pub blocks: &'a GpuBuffer,
    pub scales: &'a GpuBuffer,
    /// f32 biases.
    pub bias: &'a GpuBuffer,
}

/// `act` [k, inter] for the slots whose expert (in `route`) lies in this part; `xn` is the
/// MLP-normalised token.
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    route: &GpuBuffer,
    xn: &GpuBuffer,
    part: &ExpertPart<'_>,
    act: &GpuBuffer,
) -> Result<Dispatch> {
    let p = &params;
    if p.hidden > MAX_HIDDEN || p.hidden % 32 != 0 || p.inter % 32 != 0 || p.k == 0 {
        return Err(Error::Shape {
            what: format!("{SHADER}: hidden / intermediate / experts per token"),
            expected: format!("multiples of 32 up to {MAX_HIDDEN} / multiple of 32 / at least 1"),
            actual: format!("{} / {} / {}", p.hidden, p.inter, p.k),
        });
    }
    let rows = p.n_part as u64 * 2 * p.inter as u64;
    need(part.blocks, rows * p.hidden as u64 / 2, SHADER)?;
    need(part.scales, rows * p.hidden as u64 / 32, SHADER)?;
    need(part.bias, rows * 4, SHADER)?;
    need(route, 2 * p.k as u64 * 4, SHADER)?;
    need(xn, p.hidden as u64 * 4, SHADER)?;
    need(act, p.k as u64 * p.inter as u64 * 4, SHADER)?;
    build(
        gpu,
        SHADER,
        &[
            ("ROWS_PER_WG", ROWS_PER_WG as f64),
            // With X_GLOBAL the tile is unused; keep it minimal.
            (
                "X_VEC4",
                if x_global() {
                    4.0
                } else {
                    (p.hidden / 4) as f64
                },
            ),
            ("X_GLOBAL", x_global() as u32 as f64),
        ],
        &params,
        &part.blocks.label,
        &[
            route.binding(),
            xn.binding(),
            part.blocks.binding(),
            part.scales.binding(),
            part.bias.binding(),
            act.binding(),
        ],
        [(2 * p.inter).div_ceil(ROWS_PER_WG), p.k, 1],
    )
}
