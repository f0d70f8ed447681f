//! RMSNorm over tokens (prefill; decode fuses the norm into the following matvec).

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "rmsnorm_f32",
    params { n_tokens: u32, hidden: u32, eps: f32, _pad: u32 }
    bindings { x: Read, gain: Read, out: ReadWrite }
}

/// `out[t] = x[t] * rsqrt(mean(x[t]^2) + eps) * gain` for `n_tokens` rows of `hidden`.
pub struct RmsNorm<'a> {
    /// f32 [n_tokens, hidden].
    pub x: &'a GpuBuffer,
    /// f32 [hidden].
    pub gain: &'a GpuBuffer,
    /// f32 [n_tokens, hidden].
    pub out: &'a GpuBuffer,
    pub n_tokens: u32,
    pub hidden: u32,
    pub eps: f32,
}

impl RmsNorm<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let bytes = self.n_tokens as u64 * self.hidden as u64 * 4;
        let gain_bytes = self.hidden as u64 * 4;
        need(&[(self.x, bytes), (self.gain, gain_bytes), (self.out, bytes)])?;
        let params = Params {
            n_tokens: self.n_tokens,
            hidden: self.hidden,
            eps: self.eps,
            ..Default::default()
        };
        Bindings {
            x: self.x.binding(),
            gain: self.gain.binding(),
            out: self.out.binding(),
        }
        .build(gpu, &[], &params, &self.out.label, gpu.grid(self.n_tokens))
    }
}
