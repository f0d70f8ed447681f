//! MoE decode, second half: MXFP4 down projection per selected expert, weighted by the
//! routing weight; moe_combine_f32 adds the slots to the residual stream.

use super::moe_gate_up_f32_mf4w::{x_global, ExpertPart};
use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "moe_down_f32_mf4w";
pub const COMBINE: &str = "moe_combine_f32";
/// Output rows per workgroup (the ROWS_PER_WG override).
pub const ROWS_PER_WG: u32 = 32;
pub const MAX_INTER: u32 = 4096;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub hidden: u32,
    pub inter: u32,
    pub k: u32,
    pub e0: u32,
    pub n_part: u32,
    pub _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CombineParams {
    pub hidden: u32,
    pub k: u32,
    pub _pad: [u32; 2],
}

/// `y[j] = w_j (W2_j act_j + b2_j)` for the slots whose expert lies in this part.
pub fn dispatch(
    gpu: &Gpu,
    params: Params,
    route: &GpuBuffer,
    act: &GpuBuffer,
    part: &ExpertPart<'_>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let p = &params;
    if p.inter > MAX_INTER || p.inter % 32 != 0 || p.hidden % 32 != 0 {
        return Err(Error::Shape {
            what: format!("{SHADER}: intermediate size"),
            expected: format!("a multiple of 32 up to {MAX_INTER}"),
            actual: p.inter.to_string(),
        });
    }
    let rows = p.n_part as u64 * p.hidden as u64;
    need(part.blocks, rows * p.inter as u64 / 2, SHADER)?;
    need(part.scales, rows * p.inter as u64 / 32, SHADER)?;
    need(part.bias, rows * 4, SHADER)?;
    need(route, 2 * p.k as u64 * 4, SHADER)?;
    need(act, p.k as u64 * p.inter as u64 * 4, SHADER)?;
    need(y, p.k as u64 * p.hidden as u64 * 4, SHADER)?;
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
                    (p.inter / 4) as f64
                },
            ),
            ("X_GLOBAL", x_global() as u32 as f64),
        ],
        &params,
        &part.blocks.label,
        &[
            route.binding(),
            act.binding(),
            part.blocks.binding(),
            part.scales.binding(),
            part.bias.binding(),
            y.binding(),
        ],
        [p.hidden.div_ceil(ROWS_PER_WG), p.k, 1],
    )
}

/// `x += y[0] + ... + y[k-1]`, in slot order.
pub fn combine(gpu: &Gpu, hidden: u32, k: u32, y: &GpuBuffer, x: &GpuBuffer) -> Result<Dispatch> {
    need(y, k as u64 * hidden as u64 * 4, COMBINE)?;
    need(x, hidden as u64 * 4, COMBINE)?;
    let params = CombineParams {
        hidden,
        k,
        _pad: [0; 2],
    };
    build(
        gpu,
        COMBINE,
        &[],
        &params,
        &x.label,
        &[y.binding(), x.binding()],
        [hidden.div_ceil(256), 1, 1],
    )
}
