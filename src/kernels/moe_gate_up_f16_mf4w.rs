//! MoE decode, first half, on cooperative matrices: MXFP4 gate_up and clamped SwiGLU for each
//! selected expert with f16 operands and f32 accumulation (moe_gate_up_f32_mf4w's job, its
//! multiply-adds on the matrix units).

use super::moe::{DecodeCoop, Experts, MoeBuffers, MoeShape, Projection, DECODE_COOP_ROWS};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_gate_up_f16_mf4w",
    params {
        hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32, limit: f32,
        _pad0: u32, _pad1: u32,
    }
    bindings { route: Read, xn: Read, blocks: Read, scales: Read, bias: Read, act: ReadWrite }
}

/// `moe.act` [k, inter] from `moe.xn` [hidden] for the slots whose expert (in `route`) lies in
/// `experts`.
pub struct MoeGateUpF16<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// The SwiGLU clamp.
    pub limit: f32,
    /// [2 k]: ids, then weights (router_f32_bf16w's output).
    pub route: &'a GpuBuffer,
}

impl MoeGateUpF16<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.moe.shape;
        let ex = self.moe.bind(SHADER, self.experts, Projection::GateUp, 1)?;
        need(&[(self.route, 2 * k as u64 * 4)])?;
        if ex.rows % DECODE_COOP_ROWS != 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: gate_up rows per expert"),
                expected: format!("a multiple of {DECODE_COOP_ROWS}"),
                actual: ex.rows.to_string(),
            });
        }
        let split = DecodeCoop::new(gpu, SHADER, ex.cols)?;
        // One subgroup per K range, each with its 16 partial sums.
        let constants =
            split.constants(gpu, SHADER, split.split, split.split * DECODE_COOP_ROWS)?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            limit: self.limit,
            ..Default::default()
        };
        Bindings {
            route: self.route.binding(),
            xn: ex.input,
            blocks: ex.blocks,
            scales: ex.scales,
            bias: ex.bias,
            act: ex.output,
        }
        .build(
            gpu,
            &constants,
            &params,
            ex.label,
            [ex.rows / DECODE_COOP_ROWS, k, 1],
        )
    }
}
