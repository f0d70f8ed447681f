//! MoE prefill, first step: the top-k of each token's router logits (moe_topk_prefill),
//! then the step's (token, expert) entries sorted by expert into row tiles of [`TILE_M`]
//! (this kernel; see [`super::moe`]).

use super::moe::{check_routing, MoeShape, Routing, TILE_M};
use super::moe_topk_prefill::MoeTopKPrefill;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_route_prefill",
    params { n_tokens: u32, n_experts: u32, k: u32, tile_m: u32 }
    bindings {
        experts: Read, offsets: ReadWrite, sorted: ReadWrite, slot_pos: ReadWrite,
        tiles: ReadWrite, tile_count: ReadWrite,
    }
}

/// Fills `routing` from `logits` [n_tokens, n_experts].
pub struct MoeRoutePrefill<'a> {
    pub shape: MoeShape,
    pub n_tokens: u32,
    pub logits: &'a GpuBuffer,
    pub routing: &'a Routing,
}

impl MoeRoutePrefill<'_> {
    /// The top-k, then the grouping (one workgroup).
    pub fn dispatches(&self, gpu: &Gpu) -> Result<[Dispatch; 2]> {
        let MoeShape { n_experts, k, .. } = self.shape;
        check_routing(SHADER, n_experts, k)?;
        let topk = MoeTopKPrefill {
            shape: self.shape,
            n_tokens: self.n_tokens,
            logits: self.logits,
            routing: self.routing,
        };
        let params = Params {
            n_tokens: self.n_tokens,
            n_experts,
            k,
            tile_m: TILE_M,
        };
        let r = self.routing;
        let group = Bindings {
            experts: r.experts.binding(),
            offsets: r.offsets.binding(),
            sorted: r.sorted.binding(),
            slot_pos: r.slot_pos.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
        }
        .build(gpu, &[], &params, "moe.route", [1, 1, 1])?;
        Ok([topk.dispatch(gpu)?, group])
    }
}
