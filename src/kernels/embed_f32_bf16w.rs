//! Embedding gather: bf16 table rows to f32 activations, one part of a row-split table.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "embed_f32_bf16w",
    params { n_tokens: u32, h2: u32, row0: u32, rows: u32 }
    bindings { table: Read, ids: Read, out: ReadWrite }
}

const WG: u32 = 256;

/// `out[t] = table[ids[t]]` for ids in `row0..row0 + rows` (the rows `table` holds).
pub struct Embed<'a> {
    /// bf16 [rows, hidden].
    pub table: &'a GpuBuffer,
    pub row0: u32,
    pub rows: u32,
    pub hidden: u32,
    /// u32 [n_tokens].
    pub ids: &'a GpuBuffer,
    pub n_tokens: u32,
    /// f32 [n_tokens, hidden].
    pub out: &'a GpuBuffer,
}

impl Embed<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let (t, h) = (self.n_tokens as u64, self.hidden as u64);
        need(&[
            (self.table, self.rows as u64 * h * 2),
            (self.ids, t * 4),
            (self.out, t * h * 4),
        ])?;
        let params = Params {
            n_tokens: self.n_tokens,
            h2: self.hidden / 2,
            row0: self.row0,
            rows: self.rows,
        };
        let grid = gpu.grid((self.n_tokens * self.hidden / 2).div_ceil(WG));
        Bindings {
            table: self.table.binding(),
            ids: self.ids.binding(),
            out: self.out.binding(),
        }
        .build(gpu, &[], &params, &self.table.label, grid)
    }
}
