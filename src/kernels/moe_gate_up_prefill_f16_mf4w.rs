//! MoE prefill on cooperative matrices: grouped MXFP4 gate_up and clamped SwiGLU, f16
//! operands and f32 accumulation (moe_gate_up_prefill_f32_mf4w's job on tensor cores).

use super::moe::{
    coop_constants, prefill_grid, Experts, MoeBuffers, MoeShape, Projection, Routing, COOP_TILE_N,
};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_gate_up_prefill_f16_mf4w",
    params { hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32, limit: f32, _pad0: u32, _pad1: u32 }
    bindings {
        x16: Read, shift: Read, offsets: Read, sorted: Read, tiles: Read, tile_count: Read,
        blocks: Read, scales: Read, bias: Read, act: ReadWrite, row_exps: Read,
    }
}

/// `moe.act` [entries (sorted), inter] from the normalised activations as row_shift_f32 left
/// them (`x16`, `shift`) for the tiles whose expert is in `experts`.
pub struct MoeGateUpPrefillF16<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// The SwiGLU clamp.
    pub limit: f32,
    /// The largest step: buffers are checked and the grid sized for it.
    pub max_tokens: u32,
    pub routing: &'a Routing,
    /// Each expert row's largest scale byte, u8 [n_part, rows] in words (row_exp_mf4w).
    pub row_exps: &'a GpuBuffer,
    /// `moe.xn` [max_tokens, hidden] as two f16 parts after each token's shift, 4 bytes a
    /// value (row_shift_f32's x16).
    pub x16: &'a GpuBuffer,
    /// u32 [max_tokens].
    pub shift: &'a GpuBuffer,
}

impl MoeGateUpPrefillF16<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.moe.shape;
        let ex = self
            .moe
            .bind(SHADER, self.experts, Projection::GateUp, self.max_tokens)?;
        let rows = ex.n_part as u64 * ex.rows as u64;
        need(&[(self.row_exps, super::row_exp_mf4w::bytes(rows))])?;
        let t = self.max_tokens as u64;
        need(&[(self.shift, t * 4), (self.x16, t * hidden as u64 * 4)])?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            limit: self.limit,
            _pad0: 0,
            _pad1: 0,
        };
        let r = self.routing;
        let grid = prefill_grid(&ex, &self.moe.shape, self.max_tokens, COOP_TILE_N);
        Bindings {
            x16: self.x16.binding(),
            shift: self.shift.binding(),
            offsets: r.offsets.binding(),
            sorted: r.sorted.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            act: ex.output,
            row_exps: self.row_exps.binding(),
        }
        .build(gpu, &coop_constants(gpu), &params, ex.label, grid)
    }
}
