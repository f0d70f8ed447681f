//! What the decode kernels that read a later dispatch's weights into L2 share (prefetch.wgsl):
//! attention_decode_f32 takes o_proj's, moe_down_f32_mf4w the next layer's qkv. Their extra
//! workgroups come after the kernel's own in the grid, so they run in its tail.

use crate::gpu::{Gpu, GpuBuffer};

/// Workgroups a kernel adds to prefetch: about two a multiprocessor on the H200 (132), enough
/// loads in flight to move a matrix of ~25 MB in a few microseconds.
pub const WORKGROUPS: u32 = 256;

/// The buffer to prefetch, unless the experiment switch OSS_WGPU_TUNE_PREFETCH=off turns
/// prefetching off.
pub fn source<'a>(gpu: &Gpu, src: Option<&'a GpuBuffer>) -> Option<&'a GpuBuffer> {
    src.filter(|_| !gpu.tuning().no_prefetch)
}
