//! The MoE router's logits for a prefill step, in f32 (the decode router's arithmetic), a
//! workgroup per few tokens: `logits` [n_tokens, n_experts] = xn W^T + bias. moe_topk_prefill
//! ranks them.

use super::Bf16Rows;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "router_prefill_f32_bf16w",
    params { n_tokens: u32, n_experts: u32, k8: u32, _pad0: u32 }
    bindings { w: Read, xn: Read, bias: Read, logits: ReadWrite }
}

/// Tokens per workgroup (the shader's T).
const TOKENS_PER_WG: u32 = 8;

/// `logits` from the step's normalised tokens `xn` through the router `w` and `bias`.
pub struct RouterPrefill<'a> {
    /// bf16 [n_experts, hidden]: the whole matrix, in one buffer (its rows are the experts).
    pub w: Bf16Rows<'a>,
    pub n_tokens: u32,
    /// f32 [n_tokens, hidden].
    pub xn: &'a GpuBuffer,
    /// f32 [n_experts].
    pub bias: &'a GpuBuffer,
    /// f32 [n_tokens, n_experts].
    pub logits: &'a GpuBuffer,
}

impl RouterPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let w = &self.w;
        w.need_whole(SHADER)?;
        w.need_k_multiple(SHADER, 8)?;
        w.need(SHADER)?;
        let (t, e) = (self.n_tokens as u64, w.rows as u64);
        need(&[
            (self.xn, t * w.k as u64 * 4),
            (self.bias, e * 4),
            (self.logits, t * e * 4),
        ])?;
        let params = Params {
            n_tokens: self.n_tokens,
            n_experts: w.rows,
            k8: w.k / 8,
            _pad0: 0,
        };
        let grid = gpu.grid(self.n_tokens.div_ceil(TOKENS_PER_WG));
        Bindings {
            w: w.buffer.binding(),
            xn: self.xn.binding(),
            bias: self.bias.binding(),
            logits: self.logits.binding(),
        }
        .build(gpu, &[], &params, &self.logits.label, grid)
    }
}
