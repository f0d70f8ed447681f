//! MoE decode, second half, on cooperative matrices: the selected experts' MXFP4 down
//! projections with f16 operands and f32 accumulation, weighted and added to the residual
//! (moe_down_f32_mf4w's job, its multiply-adds on the matrix units).

use super::moe::{DecodeCoop, Experts, MoeBuffers, MoeShape, Projection, DECODE_COOP_ROWS};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_down_f16_mf4w",
    params { hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    bindings { route: Read, act: Read, blocks: Read, scales: Read, bias: Read, x: ReadWrite }
}

/// `moe.out` (the residual x [hidden]) += the weighted down projections of `moe.act` for the
/// slots whose expert (in `route`) lies in `experts`.
pub struct MoeDownF16<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// [2 k]: ids, then weights (router_f32_bf16w's output).
    pub route: &'a GpuBuffer,
}

impl MoeDownF16<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.moe.shape;
        let ex = self
            .moe
            .bind(SHADER, self.experts, Projection::DownAdd, 1)?;
        need(&[(self.route, 2 * k as u64 * 4)])?;
        if ex.rows % DECODE_COOP_ROWS != 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: down rows per expert (hidden)"),
                expected: format!("a multiple of {DECODE_COOP_ROWS}"),
                actual: ex.rows.to_string(),
            });
        }
        let split = DecodeCoop::new(gpu, SHADER, ex.cols)?;
        // Units (slot, K range), as many at once as the workgroup has subgroups: all of them
        // where the device allows.
        let units = k * split.split;
        // where the device's workgroup limits allow, else fewer, taking turns.
        let partials = units * DECODE_COOP_ROWS;
        let mut n_sg = units.min(16);
        let mut constants = split.constants(gpu, SHADER, n_sg, partials);
        while constants.is_err() && n_sg > 1 {
            n_sg -= 1;
            constants = split.constants(gpu, SHADER, n_sg, partials);
        }
        let mut constants = constants?;
        constants.push(("SPLIT", split.split as f64));
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            ..Default::default()
        };
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
            [ex.rows / DECODE_COOP_ROWS, 1, 1],
        )
    }
}
