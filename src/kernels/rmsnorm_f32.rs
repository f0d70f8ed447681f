//! RMSNorm over tokens (prefill; decode fuses the norm into the following matvec).

use super::{build, need};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "rmsnorm_f32";

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_tokens: u32,
    pub hidden: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// `out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * gain` for `n_tokens` rows of `hidden`.
pub fn dispatch(
    gpu: &Gpu,
    x: &GpuBuffer,
    gain: &GpuBuffer,
    out: &GpuBuffer,
    n_tokens: u32,
    hidden: u32,
    eps: f32,
) -> Result<Dispatch> {
    let bytes = n_tokens as u64 * hidden as u64 * 4;
    need(x, bytes, SHADER)?;
    need(gain, hidden as u64 * 4, SHADER)?;
    need(out, bytes, SHADER)?;
    let params = Params {
        n_tokens,
        hidden,
        eps,
        _pad: 0,
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &out.label,
        &[x.binding(), gain.binding(), out.binding()],
        gpu.grid(n_tokens),
    )
}
