//! MoE prefill on cooperative matrices: grouped MXFP4 down projection, f16 operands and f32
//! accumulation (moe_down_prefill_f32_mf4w's job on tensor cores).

use super::moe::{
    coop_constants, prefill_grid, Experts, MoeBuffers, MoeShape, Projection, Routing, COOP_TILE_N,
};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_down_prefill_f16_mf4w",
    params { hidden: u32, inter: u32, e0: u32, n_part: u32 }
    bindings {
        act: Read, offsets: Read, tiles: Read, tile_count: Read,
        blocks: Read, scales: Read, bias: Read, y: ReadWrite, row_exps: Read,
    }
}

/// Largest |act| the kernel rounds to f16: below f16's largest finite value (65504), with
/// room for the rounding.
const F16_SAFE: f64 = 32768.0;

/// Whether activations clamped at `limit` (|act| <= limit (limit + 1): the gate's
/// g sigmoid(1.702 g) is at most g for g > 0 and above -0.28 for g < 0, the up term at most
/// limit + 1) stay within f16's range, which this kernel needs.
pub fn fits(limit: f32) -> bool {
    let l = limit as f64;
    l.is_finite() && l * (l + 1.0) < F16_SAFE
}

/// `moe.out` [entries (sorted), hidden] = W2 act + b2 for the tiles whose expert is in
/// `experts`; `limit` is the SwiGLU clamp that made `moe.act`.
pub struct MoeDownPrefillF16<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    pub limit: f32,
    /// The largest step: buffers are checked and the grid sized for it.
    pub max_tokens: u32,
    pub routing: &'a Routing,
    /// Each expert row's largest scale byte, u8 [n_part, rows] in words (row_exp_mf4w).
    pub row_exps: &'a GpuBuffer,
}

impl MoeDownPrefillF16<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        if !fits(self.limit) {
            return Err(Error::Shape {
                what: format!("{SHADER}: SwiGLU limit (bounds the f16 activations)"),
                expected: format!("limit (limit + 1) below {F16_SAFE}"),
                actual: self.limit.to_string(),
            });
        }
        let MoeShape { hidden, inter, .. } = self.moe.shape;
        let ex = self
            .moe
            .bind(SHADER, self.experts, Projection::Down, self.max_tokens)?;
        let rows = ex.n_part as u64 * ex.rows as u64;
        need(&[(self.row_exps, super::row_exp_mf4w::bytes(rows))])?;
        let params = Params {
            hidden,
            inter,
            e0: ex.e0,
            n_part: ex.n_part,
        };
        let r = self.routing;
        let grid = prefill_grid(&ex, &self.moe.shape, self.max_tokens, COOP_TILE_N);
        Bindings {
            act: ex.input,
            offsets: r.offsets.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            y: ex.output,
            row_exps: self.row_exps.binding(),
        }
        .build(gpu, &coop_constants(gpu), &params, ex.label, grid)
    }
}
