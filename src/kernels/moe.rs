//! What the MoE kernels share. Decode: router_f32_bf16w, then moe_gate_up_f32_mf4w per
//! selected expert and moe_down_f32_mf4w, which adds the selected experts to the residual. Prefill: moe_route_prefill groups the step's (token, expert)
//! entries by expert into row tiles, moe_gate_up_prefill_f32_mf4w and moe_down_prefill_f32_mf4w
//! run over (row tile, output tile), and moe_combine_prefill_f32 adds them back in fixed order.

use super::need;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};

/// Rows (sorted token-expert entries) per prefill tile.
pub const TILE_M: u32 = 64;
/// Output columns per prefill workgroup.
pub(crate) const TILE_N: u32 = 64;

/// The layer's MoE sizes.
#[derive(Clone, Copy, Debug)]
pub struct MoeShape {
    pub hidden: u32,
    /// Intermediate size per expert.
    pub inter: u32,
    pub n_experts: u32,
    /// Experts per token.
    pub k: u32,
}

/// One expert range of one MXFP4 expert matrix (gate_up or down) as the kernels bind it:
/// experts `e0 .. e0 + n_part`, their weights in `blocks`, `scales` and f32 `bias`.
pub struct Experts<'a> {
    pub blocks: &'a GpuBuffer,
    pub scales: &'a GpuBuffer,
    pub bias: &'a GpuBuffer,
    pub e0: u32,
    pub n_part: u32,
}

/// One layer's MoE activations, decode or prefill, as every expert kernel reads and writes
/// them: gate_up takes `xn` to `act`, down takes `act` to `out`.
#[derive(Clone, Copy)]
pub struct MoeBuffers<'a> {
    pub shape: MoeShape,
    /// The MLP-normalised tokens, f32 [tokens, hidden].
    pub xn: &'a GpuBuffer,
    /// The SwiGLU activations, f32 [entries, inter] (an entry is one token's expert slot).
    pub act: &'a GpuBuffer,
    /// Down's output: prefill, the expert outputs f32 [entries, hidden]; decode, the residual
    /// stream f32 [hidden], to which down adds the weighted sum over the token's experts.
    pub out: &'a GpuBuffer,
}

/// Which expert matrix a kernel applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Projection {
    /// [2 inter, hidden]: `xn` to `act`.
    GateUp,
    /// [hidden, inter]: `act` to `out`, one row per entry (prefill).
    Down,
    /// [hidden, inter]: `act` to `out`, the entries of a token summed into its row (decode).
    DownAdd,
}

/// What an expert kernel binds and passes for its part of the experts (see [`MoeBuffers::bind`]).
pub(crate) struct Bound<'a> {
    pub input: wgpu::BindingResource<'a>,
    pub blocks: wgpu::BindingResource<'a>,
    pub scales: wgpu::BindingResource<'a>,
    pub bias: wgpu::BindingResource<'a>,
    pub output: wgpu::BindingResource<'a>,
    pub e0: u32,
    pub n_part: u32,
    /// Output rows per expert (2 inter for gate_up, hidden for down), which the grid spans.
    pub rows: u32,
    /// Input width (hidden for gate_up, inter for down).
    pub cols: u32,
    /// The weights' label, which names the dispatch.
    pub label: &'a str,
}

impl<'a> MoeBuffers<'a> {
    /// Checks the shape (MXFP4 rows of whole 32-blocks: hidden and inter multiples of 32; at
    /// least one expert per token), the weights of `experts` for `projection`, and its input
    /// and output for `tokens` tokens; then yields what every expert kernel binds and passes.
    pub(crate) fn bind(
        &self,
        kernel: &str,
        experts: &'a Experts<'a>,
        projection: Projection,
        tokens: u32,
    ) -> Result<Bound<'a>> {
        let MoeShape {
            hidden, inter, k, ..
        } = self.shape;
        if hidden % 32 != 0 || inter % 32 != 0 || k == 0 {
            return Err(Error::Shape {
                what: format!("{kernel}: hidden / intermediate / experts per token"),
                expected: "multiple of 32 / multiple of 32 / at least 1".into(),
                actual: format!("{hidden} / {inter} / {k}"),
            });
        }
        let (t, entries) = (tokens as u64, tokens as u64 * k as u64);
        let act = (self.act, entries * inter as u64 * 4);
        let ((rows, cols), input, output) = match projection {
            Projection::GateUp => ((2 * inter, hidden), (self.xn, t * hidden as u64 * 4), act),
            Projection::Down => (
                (hidden, inter),
                act,
                (self.out, entries * hidden as u64 * 4),
            ),
            Projection::DownAdd => ((hidden, inter), act, (self.out, t * hidden as u64 * 4)),
        };
        let (all_rows, cols64) = (experts.n_part as u64 * rows as u64, cols as u64);
        need(
            kernel,
            &[
                (experts.blocks, all_rows * cols64 / 2),
                (experts.scales, all_rows * cols64 / 32),
                (experts.bias, all_rows * 4),
                input,
                output,
            ],
        )?;
        Ok(Bound {
            input: input.0.binding(),
            blocks: experts.blocks.binding(),
            scales: experts.scales.binding(),
            bias: experts.bias.binding(),
            output: output.0.binding(),
            e0: experts.e0,
            n_part: experts.n_part,
            rows,
            cols,
            label: &experts.blocks.label,
        })
    }
}

/// Workgroup memory a MoE decode kernel needs besides its input tile and its `extra` bytes:
/// the nibble table, the reduction scratch and mxfp4.wgsl's pair table (in case the compiler
/// keeps it), with room to spare.
const DECODE_RESERVE_BYTES: u64 = 4096;

/// The override constants of the MoE decode kernels: `rows_per_wg` output rows per workgroup
/// taken `rows_step` at a time by each group,
/// and the input of `tile` floats (gate_up: xn; down: every slot's act) staged in a workgroup
/// tile, unless [`crate::gpu::Tuning::moe_x_global`] asks for global memory or the tile does not
/// fit the device's workgroup memory beside the kernel's `extra` bytes of its own (then it is
/// read from global memory too).
pub(crate) fn decode_constants(
    gpu: &Gpu,
    rows_per_wg: u32,
    rows_step: u32,
    tile: u32,
    extra: u64,
) -> [(&'static str, f64); 4] {
    let room = gpu.limits().max_compute_workgroup_storage_size as u64;
    let fits = tile as u64 * 4 + DECODE_RESERVE_BYTES + extra <= room;
    let x_global = gpu.tuning().moe_x_global || !fits;
    [
        ("ROWS_PER_WG", rows_per_wg as f64),
        // With X_GLOBAL the tile is unused; keep it minimal.
        ("X_VEC4", if x_global { 4.0 } else { (tile / 4) as f64 }),
        ("X_GLOBAL", x_global as u32 as f64),
        ("R", rows_step as f64),
    ]
}

/// Rows a group of a MoE decode kernel takes at once (R in moe_decode.wgsl): the kernel's
/// `default`, or [`crate::gpu::Tuning::moe_r`]. Rows per workgroup are a multiple of it.
pub(crate) fn decode_rows_step(gpu: &Gpu, default: u32) -> u32 {
    gpu.tuning().moe_r.unwrap_or(default)
}

/// One invocation per expert in router_f32_bf16w and moe_route_prefill.
pub const MAX_EXPERTS: u32 = 256;
/// Most experts per token the routing kernels keep.
pub const MAX_K: u32 = 32;

/// Checks what both routing kernels (decode and prefill) need of `n_experts` and `k`.
pub(crate) fn check_routing(kernel: &str, n_experts: u32, k: u32) -> Result<()> {
    if n_experts > MAX_EXPERTS || k == 0 || k > MAX_K || k > n_experts {
        return Err(Error::Shape {
            what: format!("{kernel}: experts / experts per token"),
            expected: format!(
                "at most {MAX_EXPERTS} experts, 1..={MAX_K} per token, no more than experts"
            ),
            actual: format!("{n_experts} / {k}"),
        });
    }
    Ok(())
}

/// The grid of a prefill expert kernel: output tiles of `tile_n` of `ex`'s rows by the row
/// tiles of `max_tokens` tokens.
pub(crate) fn prefill_grid(ex: &Bound, shape: &MoeShape, max_tokens: u32, tile_n: u32) -> [u32; 3] {
    let tiles = max_tiles(max_tokens, shape.k, shape.n_experts);
    [ex.rows.div_ceil(tile_n), tiles, 1]
}

/// Output rows per workgroup of the cooperative-matrix prefill kernels (moe_prefill_coop's TN).
pub(crate) const COOP_TILE_N: u32 = 128;
/// Subgroups per workgroup of the cooperative-matrix prefill kernels (moe_prefill_coop's N_SG).
const COOP_SUBGROUPS: u32 = 8;

/// The override constants of the cooperative-matrix prefill kernels: the workgroup size, 8
/// subgroups of the adapter's size (the kernels assume it is fixed, which
/// [`crate::gpu::Precision::coop`] checked).
pub(crate) fn coop_constants(gpu: &Gpu) -> [(&'static str, f64); 1] {
    [(
        "WG",
        (COOP_SUBGROUPS * gpu.features().subgroup_max_size) as f64,
    )]
}

/// Upper bound on the row tiles for `n_tokens` tokens: every expert may leave a partial tile.
pub fn max_tiles(n_tokens: u32, k: u32, n_experts: u32) -> u32 {
    (n_tokens * k).div_ceil(TILE_M) + n_experts.min(n_tokens * k)
}

/// The routing buffers of one prefill step (sized for the largest step), written by
/// moe_route_prefill and read by the grouped matmuls and the combine.
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
        let [weights, experts, offsets, sorted, slot_pos, tiles, tile_count] =
            Self::sizes(max_tokens, k, n_experts);
        Ok(Routing {
            weights: gpu.storage("moe.route.weights", weights)?,
            experts: gpu.storage("moe.route.experts", experts)?,
            offsets: gpu.storage("moe.route.offsets", offsets)?,
            sorted: gpu.storage("moe.route.sorted", sorted)?,
            slot_pos: gpu.storage("moe.route.slot_pos", slot_pos)?,
            tiles: gpu.storage("moe.route.tiles", tiles)?,
            tile_count: gpu.storage("moe.route.tile_count", tile_count)?,
        })
    }

    /// Bytes of the routing buffers for steps of up to `max_tokens` tokens (the memory plan).
    pub fn bytes(max_tokens: u32, k: u32, n_experts: u32) -> u64 {
        Self::sizes(max_tokens, k, n_experts).iter().sum()
    }

    /// Bytes of each buffer, in field order (all multiples of 4).
    fn sizes(max_tokens: u32, k: u32, n_experts: u32) -> [u64; 7] {
        let entries = max_tokens as u64 * k as u64 * 4;
        let tiles = max_tiles(max_tokens, k, n_experts) as u64 * 8;
        let offsets = (n_experts as u64 + 1) * 4;
        [entries, entries, offsets, entries, entries, tiles, 4]
    }
}
