//! MoE decode, second half: MXFP4 down projection per selected expert, weighted by the
//! routing weight; moe_combine_f32 adds the slots to the residual stream.

use super::moe::{decode_constants, Experts, MoeShape};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_down_f32_mf4w",
    params {
        hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32,
        _pad0: u32, _pad1: u32, _pad2: u32,
    }
    bindings { route: Read, act: Read, blocks: Read, scales: Read, bias: Read, y: ReadWrite }
}

/// Output rows per workgroup (the ROWS_PER_WG override).
pub const ROWS_PER_WG: u32 = 32;

/// `y[j] = w_j (W2_j act_j + b2_j)` for the slots whose expert lies in `experts`.
pub struct MoeDown<'a> {
    pub shape: MoeShape,
    /// [2 k]: ids, then weights.
    pub route: &'a GpuBuffer,
    /// f32 [k, inter].
    pub act: &'a GpuBuffer,
    pub experts: &'a Experts<'a>,
    /// f32 [k, hidden].
    pub y: &'a GpuBuffer,
}

impl MoeDown<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.shape;
        let ex = self.experts.bind(SHADER, &self.shape, hidden, inter)?;
        let slots = k as u64 * 4;
        need(&[
            (self.route, 2 * slots),
            (self.act, slots * inter as u64),
            (self.y, slots * hidden as u64),
        ])?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            ..Default::default()
        };
        let constants = decode_constants(gpu, SHADER, ROWS_PER_WG, inter)?;
        Bindings {
            route: self.route.binding(),
            act: self.act.binding(),
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            y: self.y.binding(),
        }
        .build(
            gpu,
            &constants,
            &params,
            ex.label,
            [hidden.div_ceil(ROWS_PER_WG), k, 1],
        )
    }
}
