//! MoE prefill: grouped MXFP4 down projection over (output tile, row tile).

use super::moe::{prefill_grid, Experts, MoeBuffers, MoeShape, Projection, Routing, TILE_N};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "moe_down_prefill_f32_mf4w",
    params { hidden: u32, inter: u32, e0: u32, n_part: u32 }
    bindings {
        act: Read, offsets: Read, tiles: Read, tile_count: Read,
        blocks: Read, scales: Read, bias: Read, y: ReadWrite,
    }
}

/// `moe.out` [entries (sorted), hidden] = W2 act + b2 for the tiles whose expert is in
/// `experts`.
pub struct MoeDownPrefill<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// The largest step: buffers are checked and the grid sized for it.
    pub max_tokens: u32,
    pub routing: &'a Routing,
}

impl MoeDownPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape { hidden, inter, .. } = self.moe.shape;
        let projection = Projection::Down;
        let ex = self
            .moe
            .bind(SHADER, self.experts, projection, self.max_tokens)?;
        let params = Params {
            hidden,
            inter,
            e0: ex.e0,
            n_part: ex.n_part,
        };
        let r = self.routing;
        let grid = prefill_grid(&ex, &self.moe.shape, self.max_tokens, TILE_N);
        Bindings {
            act: ex.input,
            offsets: r.offsets.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            y: ex.output,
        }
        .build(gpu, &[], &params, ex.label, grid)
    }
}
