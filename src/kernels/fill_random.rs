//! Seeded pseudo-random fills for synthetic weights (see src/model/synthetic.rs).

pub const SHADER: &str = "fill_random";

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_words: u32,
    /// 0 bf16 pairs in [lo, hi]; 1 random bytes; 2 bytes in the integers [lo, hi]; 3 f32.
    pub mode: u32,
    pub seed: u32,
    pub _pad: u32,
    pub lo: f32,
    pub hi: f32,
    pub _pad1: [u32; 2],
}
