//! One pass of 16-byte loads over a large buffer: the bandwidth a WGSL kernel reaches here.

use super::{build, need};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "bandwidth_read";
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_vec4: u32,
    pub stride: u32,
    pub _pad: [u32; 2],
}

/// Reads all of `data` (a multiple of 16 bytes) with `workgroups` workgroups.
pub fn dispatch(
    gpu: &Gpu,
    data: &GpuBuffer,
    sink: &GpuBuffer,
    workgroups: u32,
) -> Result<Dispatch> {
    need(sink, 256 * 4, SHADER)?;
    let params = Params {
        n_vec4: (data.bytes / 16) as u32,
        stride: workgroups * WG,
        _pad: [0; 2],
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &data.label,
        &[data.binding(), sink.binding()],
        [workgroups, 1, 1],
    )
}
