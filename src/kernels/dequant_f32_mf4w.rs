//! MXFP4 blocks and scales to f32, exactly. The format's reference kernel (tests, inspect).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "dequant_f32_mf4w",
    /// Decodes `n_blocks` 32-blocks, `blocks` [n_blocks, 16] u8 and `scales` [n_blocks] u8,
    /// into `out` [n_blocks * 32] f32.
    pub struct Dequant { n_blocks: u32 }
    padding { _pad0: u32, _pad1: u32, _pad2: u32 }
    buffers { blocks: Read, scales: Read, out: ReadWrite }
}

const WORKGROUP: u32 = 64;

impl Dequant<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let n = self.n_blocks as u64;
        need(&[
            (self.blocks, n * 16),
            (self.scales, n),
            (self.out, n * 32 * 4),
        ])?;
        let grid = gpu.grid(self.n_blocks.div_ceil(WORKGROUP));
        self.bindings()
            .build(gpu, &[], &self.params(), &self.out.label, grid)
    }
}
