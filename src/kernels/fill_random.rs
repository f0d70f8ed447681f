//! Seeded pseudo-random fills for synthetic weights (see src/model/synthetic.rs).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "fill_random",
    params {
        n_words: u32, mode: u32, seed: u32, _pad: u32, lo: f32, hi: f32,
        _pad1: u32, _pad2: u32,
    }
    bindings { out: ReadWrite }
}

/// What the words of the buffer become.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// bf16 pairs uniform in [lo, hi].
    Bf16 { lo: f32, hi: f32 },
    /// Random bytes.
    Bytes,
    /// Bytes uniform in the integers [lo, hi].
    Integers { lo: f32, hi: f32 },
    /// f32 uniform in [lo, hi].
    F32 { lo: f32, hi: f32 },
}

/// Fills the first `n_words` words of `out`.
pub struct FillRandom<'a> {
    pub out: &'a GpuBuffer,
    pub n_words: u32,
    pub mode: Mode,
    pub seed: u32,
}

impl FillRandom<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        // The shader's mode numbers.
        let (mode, lo, hi) = match self.mode {
            Mode::Bf16 { lo, hi } => (0, lo, hi),
            Mode::Bytes => (1, 0.0, 0.0),
            Mode::Integers { lo, hi } => (2, lo, hi),
            Mode::F32 { lo, hi } => (3, lo, hi),
        };
        let params = Params {
            n_words: self.n_words,
            mode,
            seed: self.seed,
            lo,
            hi,
            ..Default::default()
        };
        let grid = gpu.grid(self.n_words.div_ceil(256));
        Bindings {
            out: self.out.binding(),
        }
        .build(gpu, &[], &params, &self.out.label, grid)
    }
}
