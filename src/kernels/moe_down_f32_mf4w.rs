//! MoE decode, second half: MXFP4 down projection of every selected expert, weighted by its
//! routing weight and added to the residual stream (the slots summed in order).

use super::moe::{decode_constants, Experts, MoeBuffers, MoeShape, Projection};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_down_f32_mf4w",
    params {
        hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32,
        _pad0: u32, _pad1: u32, _pad2: u32,
    }
    bindings { route: Read, act: Read, blocks: Read, scales: Read, bias: Read, x: ReadWrite }
}

/// Output rows per workgroup, each computed for every slot (the ROWS_PER_WG override, a
/// multiple of 4): with gpt-oss's k = 4, a workgroup's 8 groups take one (slot, 4 rows) unit
/// each, the work a workgroup did per (32 rows, slot) before the slots were summed here.
/// [`crate::gpu::Tuning::moe_rows`] overrides it for experiments.
pub const ROWS_PER_WG: u32 = 8;
/// Rows a group takes at once (8 rows of 4 slots: a unit per group).
pub const ROWS_STEP: u32 = 4;

/// `moe.out[r] += sum_j w_j (W2_j act_j + b2_j)[r]` over the slots j whose expert lies in
/// `experts` (`moe.out` is the residual stream).
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
        let ex = self
            .moe
            .bind(SHADER, self.experts, Projection::DownAdd, 1)?;
        need(&[(self.route, 2 * k as u64 * 4)])?;
        let rows = gpu.tuning().moe_rows.map_or(ROWS_PER_WG, |(_, down)| down);
        let step = super::moe::decode_rows_step(gpu, ROWS_STEP);
        if rows % step != 0 || rows == 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: rows per workgroup"),
                expected: format!("a positive multiple of {step} (rows a group takes at once)"),
                actual: rows.to_string(),
            });
        }
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            ..Default::default()
        };
        let y_len = k * rows;
        let mut constants = decode_constants(gpu, rows, step, k * inter, y_len as u64 * 4).to_vec();
        constants.push(("Y_LEN", y_len as f64));
        Bindings {
            route: self.route.binding(),
            act: ex.input,
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            x: ex.output,
        }
        .build(
            gpu,
            &constants,
            &params,
            ex.label,
            [ex.rows.div_ceil(rows), 1, 1],
        )
    }
}
