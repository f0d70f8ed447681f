//! Grouped MoE for a prefill step: route tokens to experts (moe_route_prefill), the grouped
//! MXFP4 gate_up + SwiGLU and down matmuls over (expert, row tile, output tile), and the
//! fixed-order combine with the residual stream (moe_combine_prefill_f32).

use super::moe_gate_up_f32_mf4w::ExpertPart;
use super::{build, need};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const ROUTE: &str = "moe_route_prefill";
pub const GATE_UP: &str = "moe_gate_up_prefill_f32_mf4w";
pub const DOWN: &str = "moe_down_prefill_f32_mf4w";
pub const COMBINE: &str = "moe_combine_prefill_f32";
/// Rows (sorted token-expert entries) per tile, and output columns per workgroup.
pub const TILE_M: u32 = 64;
const TILE_N: u32 = 64;
/// moe_route_prefill handles one expert per invocation of its single workgroup.
pub const MAX_EXPERTS: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RouteParams {
    pub n_tokens: u32,
    pub n_experts: u32,
    pub k: u32,
    pub tile_m: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GateUpParams {
    pub hidden: u32,
    pub inter: u32,
    pub k: u32,
    pub e0: u32,
    pub n_part: u32,
    pub limit: f32,
    pub n_experts: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DownParams {
    pub hidden: u32,
    pub inter: u32,
    pub e0: u32,
    pub n_part: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CombineParams {
    pub n_tokens: u32,
    pub hidden: u32,
    pub k: u32,
    pub _pad: u32,
}

/// Upper bound on the row tiles for `n_tokens` tokens: every expert may leave a partial tile.
pub fn max_tiles(n_tokens: u32, k: u32, n_experts: u32) -> u32 {
    (n_tokens * k).div_ceil(TILE_M) + n_experts.min(n_tokens * k)
}

/// The routing buffers of one prefill step (sized for the largest step).
pub struct Routing {
    pub weights: GpuBuffer,
    pub experts: GpuBuffer,
    pub offsets: GpuBuffer,
    pub sorted: GpuBuffer,
    pub slot_pos: GpuBuffer,
    pub tiles: GpuBuffer,
    pub tile_count: GpuBuffer,
}

impl Routing {
    pub fn new(gpu: &Gpu, max_tokens: u32, k: u32, n_experts: u32) -> Result<Self> {
        let entries = max_tokens as u64 * k as u64 * 4;
        Ok(Routing {
            weights: gpu.storage("moe.route.weights", entries)?,
            experts: gpu.storage("moe.route.experts", entries)?,
            offsets: gpu.storage("moe.route.offsets", (n_experts as u64 + 1) * 4)?,
            sorted: gpu.storage("moe.route.sorted", entries)?,
            slot_pos: gpu.storage("moe.route.slot_pos", entries)?,
            tiles: gpu.storage(
                "moe.route.tiles",
                max_tiles(max_tokens, k, n_experts) as u64 * 8,
            )?,
            tile_count: gpu.storage("moe.route.tile_count", 4)?,
        })
    }
}

pub fn route(gpu: &Gpu, params: RouteParams, logits: &GpuBuffer, r: &Routing) -> Result<Dispatch> {
    if params.n_experts > MAX_EXPERTS
        || params.k == 0
        || params.k > 32
        || params.k > params.n_experts
    {
        return Err(Error::Shape {
            what: format!("{ROUTE}: experts / experts per token"),
            expected: format!(
                "at most {MAX_EXPERTS} experts, 1..=32 per token, no more than experts"
            ),
            actual: format!("{} / {}", params.n_experts, params.k),
        });
    }
    need(
        logits,
        params.n_tokens as u64 * params.n_experts as u64 * 4,
        ROUTE,
    )?;
    build(
        gpu,
        ROUTE,
        &[],
        &params,
        "moe.route",
        &[
            logits.binding(),
            r.weights.binding(),
            r.experts.binding(),
            r.offsets.binding(),
            r.sorted.binding(),
            r.slot_pos.binding(),
            r.tiles.binding(),
            r.tile_count.binding(),
        ],
        [1, 1, 1],
    )
}

/// `act` [entries (sorted), inter] for the tiles whose expert is in this part.
pub fn gate_up(
    gpu: &Gpu,
    params: GateUpParams,
    max_tokens: u32,
    xn: &GpuBuffer,
    r: &Routing,
    part: &ExpertPart<'_>,
    act: &GpuBuffer,
) -> Result<Dispatch> {
    let p = &params;
    let rows = p.n_part as u64 * 2 * p.inter as u64;
    need(part.blocks, rows * p.hidden as u64 / 2, GATE_UP)?;
    need(part.scales, rows * p.hidden as u64 / 32, GATE_UP)?;
    need(part.bias, rows * 4, GATE_UP)?;
    need(xn, max_tokens as u64 * p.hidden as u64 * 4, GATE_UP)?;
    need(
        act,
        max_tokens as u64 * p.k as u64 * p.inter as u64 * 4,
        GATE_UP,
    )?;
    build(
        gpu,
        GATE_UP,
        &[],
        &params,
        &part.blocks.label,
        &[
            xn.binding(),
            r.offsets.binding(),
            r.sorted.binding(),
            r.tiles.binding(),
            r.tile_count.binding(),
            part.blocks.binding(),
            part.scales.binding(),
            part.bias.binding(),
            act.binding(),
        ],
        [
            (2 * p.inter).div_ceil(TILE_N),
            max_tiles(max_tokens, p.k, p.n_experts),
            1,
        ],
    )
}

/// `y` [entries (sorted), hidden] = W2 act + b2 for the tiles whose expert is in this part.
#[allow(clippy::too_many_arguments)]
pub fn down(
    gpu: &Gpu,
    params: DownParams,
    max_tokens: u32,
    k: u32,
    n_experts: u32,
    act: &GpuBuffer,
    r: &Routing,
    part: &ExpertPart<'_>,
    y: &GpuBuffer,
) -> Result<Dispatch> {
    let p = &params;
    let rows = p.n_part as u64 * p.hidden as u64;
    need(part.blocks, rows * p.inter as u64 / 2, DOWN)?;
    need(part.scales, rows * p.inter as u64 / 32, DOWN)?;
    need(part.bias, rows * 4, DOWN)?;
    need(y, max_tokens as u64 * k as u64 * p.hidden as u64 * 4, DOWN)?;
    build(
        gpu,
        DOWN,
        &[],
        &params,
        &part.blocks.label,
        &[
            act.binding(),
            r.offsets.binding(),
            r.tiles.binding(),
            r.tile_count.binding(),
            part.blocks.binding(),
            part.scales.binding(),
            part.bias.binding(),
            y.binding(),
        ],
        [
            p.hidden.div_ceil(TILE_N),
            max_tiles(max_tokens, k, n_experts),
            1,
        ],
    )
}

/// `x[t] += sum_j w[t, j] y[entry(t, j)]`.
pub fn combine(
    gpu: &Gpu,
    params: CombineParams,
    y: &GpuBuffer,
    r: &Routing,
    x: &GpuBuffer,
) -> Result<Dispatch> {
    need(
        x,
        params.n_tokens as u64 * params.hidden as u64 * 4,
        COMBINE,
    )?;
    build(
        gpu,
        COMBINE,
        &[],
        &params,
        "moe.combine",
        &[
            y.binding(),
            r.weights.binding(),
            r.slot_pos.binding(),
            x.binding(),
        ],
        gpu.grid((params.n_tokens * params.hidden).div_ceil(256)),
    )
}
