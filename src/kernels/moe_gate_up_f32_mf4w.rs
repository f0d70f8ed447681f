//! MoE decode, first half: MXFP4 gate_up and clamped SwiGLU for each selected expert.

use super::moe::{decode_constants, decode_rows_step, Experts, MoeBuffers, MoeShape, Projection};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "moe_gate_up_f32_mf4w",
    params {
        hidden: u32, inter: u32, k: u32, e0: u32, n_part: u32, limit: f32,
        _pad0: u32, _pad1: u32,
    }
    bindings { route: Read, xn: Read, blocks: Read, scales: Read, bias: Read, act: ReadWrite }
}

/// gate_up rows per workgroup (the ROWS_PER_WG override; a multiple of ROWS_STEP).
/// [`crate::gpu::Tuning::moe_rows`] overrides it for experiments.
/// On the H200, with 4 rows a step: 27.1 us a layer at 32 rows, 28.4 at 64, 36.6 at 128
/// (BENCHMARKS.md, change 35).
pub const ROWS_PER_WG: u32 = 32;
/// Rows (2 gate/up pairs) a group takes at once. On the H200 4 rows were slower than 8
/// (35.4 us against 32.4) while the staged input's reads conflicted on banks; with
/// moe_xs_index's rotation 4 are the faster (28.4 against 30.2 at 64 rows a workgroup).
pub const ROWS_STEP: u32 = 4;

/// `moe.act` [k, inter] from `moe.xn` [hidden] for the slots whose expert (in `route`) lies in
/// `experts`.
pub struct MoeGateUp<'a> {
    pub moe: MoeBuffers<'a>,
    pub experts: &'a Experts<'a>,
    /// The SwiGLU clamp.
    pub limit: f32,
    /// [2 k]: ids, then weights (router_f32_bf16w's output).
    pub route: &'a GpuBuffer,
}

impl MoeGateUp<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.moe.shape;
        let ex = self.moe.bind(SHADER, self.experts, Projection::GateUp, 1)?;
        need(&[(self.route, 2 * k as u64 * 4)])?;
        let params = Params {
            hidden,
            inter,
            k,
            e0: ex.e0,
            n_part: ex.n_part,
            limit: self.limit,
            ..Default::default()
        };
        let rows = gpu
            .tuning()
            .moe_rows
            .map_or(ROWS_PER_WG, |(gate_up, _)| gate_up);
        let step = decode_rows_step(gpu, ROWS_STEP);
        if rows % step != 0 || rows == 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: rows per workgroup"),
                expected: format!("a positive multiple of {step} (rows a group takes at once)"),
                actual: rows.to_string(),
            });
        }
        let constants = decode_constants(gpu, rows, step, ex.cols, 0);
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
            [ex.rows.div_ceil(rows), k, 1],
        )
    }
}
