//! What the decode kernels that read a later dispatch's weights into L2 share (prefetch.wgsl):
//! attention_decode_f32 takes o_proj's, moe_down_f32_mf4w the next layer's qkv. Their extra
//! workgroups come after the kernel's own in the grid, so they run in its tail.

use crate::gpu::{Gpu, GpuBuffer};

/// Workgroups a kernel adds to prefetch by default: about two a multiprocessor on the H200
/// (132).
pub const WORKGROUPS: u32 = 256;

/// Which kernel prefetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    Attention,
    Down,
}

/// The buffer to prefetch at `site`, unless the experiment switches (OSS_WGPU_TUNE_PREFETCH)
/// turn prefetching there off.
pub fn source<'a>(gpu: &Gpu, site: Site, src: Option<&'a GpuBuffer>) -> Option<&'a GpuBuffer> {
    let t = gpu.tuning().prefetch;
    let off = match site {
        Site::Attention => t.no_attention,
        Site::Down => t.no_down,
    };
    src.filter(|_| !off)
}

/// Prefetching workgroups a kernel adds (when it prefetches).
pub fn workgroups(gpu: &Gpu) -> u32 {
    gpu.tuning().prefetch.workgroups.unwrap_or(WORKGROUPS)
}

/// prefetch.wgsl's override constants.
pub fn constants(gpu: &Gpu) -> [(&'static str, f64); 1] {
    [(
        "PREFETCH_ALL",
        if gpu.tuning().prefetch.all { 1.0 } else { 0.0 },
    )]
}
