//! MXFP4 blocks and scales to f32, exactly. The format's reference kernel (tests, inspect).

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
    let pipeline = gpu.pipeline(SHADER, SHADER, &[])?;
    let params = gpu.uniform(
        &format!("{SHADER}.params"),
        &Params {
            n_blocks,
            _pad: [0; 3],
        },
    )?;
    let bind_group = gpu.bind(
        &pipeline,
        &out.label,
        &[
            params.as_entire_binding(),
            blocks.binding(),
            scales.binding(),
            out.binding(),
        ],
    )?;
    Ok(Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(n_blocks.div_ceil(WORKGROUP)),
    })
}
