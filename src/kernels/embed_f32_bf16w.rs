//! Embedding gather: bf16 table rows to f32 activations, one part of a row-split table.

use super::{build, need};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

pub const SHADER: &str = "embed_f32_bf16w";
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub n_tokens: u32,
    pub h2: u32,
    pub row0: u32,
    pub rows: u32,
}

/// `out[t] = table[ids[t]]` for ids in `row0..row0 + rows` (the rows `table` holds).
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    table: &GpuBuffer,
    row0: u32,
    rows: u32,
    hidden: u32,
    ids: &GpuBuffer,
    n_tokens: u32,
    out: &GpuBuffer,
) -> Result<Dispatch> {
    need(table, rows as u64 * hidden as u64 * 2, SHADER)?;
    need(ids, n_tokens as u64 * 4, SHADER)?;
    need(out, n_tokens as u64 * hidden as u64 * 4, SHADER)?;
    let params = Params {
        n_tokens,
        h2: hidden / 2,
        row0,
        rows,
    };
    build(
        gpu,
        SHADER,
        &[],
        &params,
        &table.label,
        &[table.binding(), ids.binding(), out.binding()],
        gpu.grid((n_tokens * hidden / 2).div_ceil(WG)),
    )
}
