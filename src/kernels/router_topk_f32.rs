//! The router's top-k and softmax, once per layer: route = [ids[k], weights[k]].

use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "router_topk_f32";
/// One invocation per expert.
pub const MAX_EXPERTS: u32 = 256;
pub const MAX_K: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_experts: u32,
    pub k: u32,
    pub _pad: [u32; 2],
}

pub fn dispatch(
    gpu: &Gpu,
    n_experts: u32,
    k: u32,
    logits: &GpuBuffer,
    route: &GpuBuffer,
) -> Result<Dispatch> {
    if n_experts > MAX_EXPERTS || k == 0 || k > MAX_K || k > n_experts {
        return Err(Error::Shape {
            what: format!("{SHADER}: experts / experts per token"),
            expected: format!(
                "at most {MAX_EXPERTS} experts, 1..={MAX_K} per token, no more than experts"
            ),
            actual: format!("{n_experts} / {k}"),
        });
    }
    need(logits, n_experts as u64 * 4, SHADER)?;
    need(route, 2 * k as u64 * 4, SHADER)?;
    let params = Params {
        n_experts,
        k,
        _pad: [0; 2],
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &route.label,
        &[logits.binding(), route.binding()],
        [1, 1, 1],
    )
}
