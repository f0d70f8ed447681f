//! RMSNorm over tokens (prefill; decode fuses the norm into the following matvec).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "rmsnorm_f32",
    /// `out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * gain` for `n_tokens` rows of `hidden`:
    /// `x` and `out` f32 [n_tokens, hidden], `gain` f32 [hidden].
    pub struct RmsNorm { n_tokens: u32, hidden: u32, eps: f32 }
    padding { _pad: u32 }
    buffers { x: Read, gain: Read, out: ReadWrite }
}

impl RmsNorm<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let bytes = self.n_tokens as u64 * self.hidden as u64 * 4;
        let gain_bytes = self.hidden as u64 * 4;
        need(&[(self.x, bytes), (self.gain, gain_bytes), (self.out, bytes)])?;
        let grid = gpu.grid(self.n_tokens);
        self.bindings()
            .build(gpu, &[], &self.params(), &self.out.label, grid)
    }
}
