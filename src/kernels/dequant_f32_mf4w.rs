//! MXFP4 blocks and scales to f32, exactly. The format's reference kernel (tests, inspect).

use super::{build, need};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "dequant_f32_mf4w";
const WORKGROUP: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_blocks: u32,
    pub _pad: [u32; 3],
}

/// Decodes `n_blocks` 32-blocks: `blocks` [n_blocks, 16] u8, `scales` [n_blocks] u8 into
/// `out` [n_blocks * 32] f32.
pub fn dispatch(
    gpu: &Gpu,
    blocks: &GpuBuffer,
    scales: &GpuBuffer,
    out: &GpuBuffer,
    n_blocks: u32,
) -> Result<Dispatch> {
    need(blocks, n_blocks as u64 * 16, SHADER)?;
    need(scales, n_blocks as u64, SHADER)?;
    need(out, n_blocks as u64 * 32 * 4, SHADER)?;
    let params = Params {
        n_blocks,
        _pad: [0; 3],
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &out.label,
        &[blocks.binding(), scales.binding(), out.binding()],
        gpu.grid(n_blocks.div_ceil(WORKGROUP)),
    )
}
