//! What a decode kernel that reads a later dispatch's weights into L2 needs (prefetch.wgsl):
//! attention_decode_f32 reads o_proj's with workgroups that follow its own in the grid.
//! (moe_down_f32_mf4w reading the next layer's qkv lost 2-3% end to end on the H200: its
//! extra workgroups lengthen an instruction-bound kernel more than qkv gains; BENCHMARKS.md,
//! change 36.)

use crate::gpu::Gpu;

/// Workgroups a kernel adds to prefetch: about one a multiprocessor on the H200 (132). 128
/// to 1024, one word a sector or every byte, all measured within 0.5% of each other there.
pub const WORKGROUPS: u32 = 128;

/// Whether the plan has decode prefetch a matrix of `bytes` into L2. It pays only where the
/// matrix fits the L2 with room to spare; wgpu does not report the L2's size, so this holds
/// for the adapters measured (NVIDIA H100 and H200, 50 MB) and not elsewhere, where reading a
/// matrix that does not stay in L2 would read it from DRAM twice. OSS_WGPU_TUNE_PREFETCH=off
/// turns it off there too (the A/B).
pub fn worth_it(gpu: &Gpu, bytes: u64) -> bool {
    const NVIDIA: u32 = 0x10de;
    const L2_BYTES: u64 = 50_000_000;
    let info = &gpu.info;
    let measured =
        info.vendor == NVIDIA && (info.name.contains("H100") || info.name.contains("H200"));
    measured && bytes <= L2_BYTES / 2 && !gpu.tuning().no_prefetch
}
