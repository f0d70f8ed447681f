//! MoE prefill: grouped MXFP4 down projection over (output tile, row tile).

use super::moe::{max_tiles, Experts, MoeShape, Routing, TILE_N};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_down_prefill_f32_mf4w",
    params { hidden: u32, inter: u32, e0: u32, n_part: u32 }
    bindings {
        act: Read, offsets: Read, tiles: Read, tile_count: Read,
        blocks: Read, scales: Read, bias: Read, y: ReadWrite,
    }
}

/// `y` [entries (sorted), hidden] = W2 act + b2 for the tiles whose expert is in `experts`.
pub struct MoeDownPrefill<'a> {
    pub shape: MoeShape,
    /// The largest step: buffers are checked and the grid sized for it.
    pub max_tokens: u32,
    /// f32 [entries (sorted), inter].
    pub act: &'a GpuBuffer,
    pub routing: &'a Routing,
    pub experts: &'a Experts<'a>,
    pub y: &'a GpuBuffer,
}

impl MoeDownPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden,
            inter,
            n_experts,
            k,
        } = self.shape;
        let ex = self.experts.bind(SHADER, &self.shape, hidden, inter)?;
        let entries = self.max_tokens as u64 * k as u64;
        need(&[(self.y, entries * hidden as u64 * 4)])?;
        let params = Params {
            hidden,
            inter,
            e0: ex.e0,
            n_part: ex.n_part,
        };
        let r = self.routing;
        let grid = [
            hidden.div_ceil(TILE_N),
            max_tiles(self.max_tokens, k, n_experts),
            1,
        ];
        Bindings {
            act: self.act.binding(),
            offsets: r.offsets.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            y: self.y.binding(),
        }
        .build(gpu, &[], &params, ex.label, grid)
    }
}
