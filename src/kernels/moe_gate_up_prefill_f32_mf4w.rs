//! MoE prefill: grouped MXFP4 gate_up and clamped SwiGLU over (output tile, row tile).

use super::moe::{prefill_grid, Experts, MoeBuffers, MoeShape, Projection, Routing, TILE_N};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu};

kernel! {
    shader: "moe_gate_up_prefill_f32_mf4w",
    params {
        hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32, limit: f32, n_experts: u32,
        _pad: u32,
    }
    bindings {
        xn: Read, offsets: Read, sorted: Read, tiles: Read, tile_count: Read,
        blocks: Read, scales: Read, bias: Read, act: ReadWrite,
    }
}

/// `moe.act` [entries (sorted), inter] from `moe.xn` [max_tokens, hidden] for the tiles whose
/// expert is in `experts`.
pub struct MoeGateUpPrefill<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// The SwiGLU clamp.
    pub limit: f32,
    /// The largest step: buffers are checked and the grid sized for it.
    pub max_tokens: u32,
    pub routing: &'a Routing,
}

impl MoeGateUpPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden,
            inter,
            n_experts,
            k,
        } = self.moe.shape;
        let projection = Projection::GateUp;
        let ex = self
            .moe
            .bind(SHADER, self.experts, projection, self.max_tokens)?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            limit: self.limit,
            n_experts,
            _pad: 0,
        };
        let r = self.routing;
        let grid = prefill_grid(&ex, &self.moe.shape, self.max_tokens, TILE_N);
        Bindings {
            xn: ex.input,
            offsets: r.offsets.binding(),
            sorted: r.sorted.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            act: ex.output,
        }
        .build(gpu, &[], &params, ex.label, grid)
    }
}
