//! MoE prefill, first step: the top-k of each token's router logits (moe_topk_prefill),
//! then the step's (token, expert) entries sorted by expert into row tiles of [`TILE_M`]
//! (this kernel; see [`super::moe`]).

use super::moe::{check_routing, MoeShape, Routing, TILE_M};
use super::moe_topk_prefill::MoeTopKPrefill;
use crate::error::{Error, Result};
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
        let mask_words = mask_words(gpu, n_experts)?;
        let r = self.routing;
        let group = Bindings {
            experts: r.experts.binding(),
            offsets: r.offsets.binding(),
            sorted: r.sorted.binding(),
            slot_pos: r.slot_pos.binding(),
            tiles: r.tiles.binding(),
            tile_count: r.tile_count.binding(),
        }
        .build(
            gpu,
            &[("MASK_WORDS", mask_words as f64)],
            &params,
            "moe.route",
            [1, 1, 1],
        )?;
        Ok([topk.dispatch(gpu)?, group])
    }
}

/// The shader's WG: invocations, and words of each of its two per-invocation arrays.
const WG: u32 = 256;
/// The mask's words where workgroup memory allows (32 KiB).
const MASK_WORDS_MAX: u32 = 8192;

/// Words of the entry mask: MASK_WORDS_MAX, or what fits the device's workgroup memory beside
/// the two per-invocation arrays (some adapters offer 32 KiB in all, or 16). At least a word
/// a row (expert).
fn mask_words(gpu: &Gpu, n_experts: u32) -> Result<u32> {
    let room = gpu.limits().max_compute_workgroup_storage_size;
    let words = (room.saturating_sub(2 * WG * 4) / 4).min(MASK_WORDS_MAX);
    if words < n_experts {
        return Err(Error::Shape {
            what: format!("{SHADER}: workgroup memory"),
            expected: format!("at least {} bytes", (n_experts + 2 * WG) * 4),
            actual: format!("{room} bytes on this adapter"),
        });
    }
    Ok(words)
}
