//! MoE decode, second half: MXFP4 down projection per selected expert, weighted by the
//! routing weight; moe_combine_f32 adds the slots to the residual stream.

use super::moe::{decode_constants, Experts, MoeBuffers, MoeShape, Projection};
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

/// `moe.y[j] = w_j (W2_j act_j + b2_j)` for the slots whose expert lies in `experts`.
pub struct MoeDown<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// [2 k]: ids, then weights.
    pub route: &'a GpuBuffer,
}

impl MoeDown<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.moe.shape;
        let ex = self.moe.bind(SHADER, self.experts, Projection::Down, 1)?;
        need(&[(self.route, 2 * k as u64 * 4)])?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            ..Default::default()
        };
        let constants = decode_constants(gpu, SHADER, ROWS_PER_WG, ex.cols)?;
        Bindings {
            route: self.route.binding(),
            act: ex.input,
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            y: ex.output,
        }
        .build(
            gpu,
            &constants,
            &params,
            ex.label,
            [ex.rows.div_ceil(ROWS_PER_WG), k, 1],
        )
    }
}
