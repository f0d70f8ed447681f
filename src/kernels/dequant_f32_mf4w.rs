//! MXFP4 blocks and scales to f32, exactly. The format's reference kernel (tests, inspect).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "dequant_f32_mf4w",
    params { n_blocks: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    bindings { blocks: Read, scales: Read, out: ReadWrite }
}

const WORKGROUP: u32 = 64;

/// Decodes `n_blocks` 32-blocks into `out` [n_blocks * 32] f32.
pub struct Dequant<'a> {
    /// [n_blocks, 16] u8.
    pub blocks: &'a GpuBuffer,
    /// [n_blocks] u8.
    pub scales: &'a GpuBuffer,
    pub out: &'a GpuBuffer,
    pub n_blocks: u32,
}

impl Dequant<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let n = self.n_blocks as u64;
        need(&[
            (self.blocks, n * 16),
            (self.scales, n),
            (self.out, n * 32 * 4),
        ])?;
        let params = Params {
            n_blocks: self.n_blocks,
            ..Default::default()
        };
        Bindings {
            blocks: self.blocks.binding(),
            scales: self.scales.binding(),
            out: self.out.binding(),
        }
        .build(
            gpu,
            &[],
            &params,
            &self.out.label,
            gpu.grid(self.n_blocks.div_ceil(WORKGROUP)),
        )
    }
}
