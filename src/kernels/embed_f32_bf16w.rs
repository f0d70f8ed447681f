//! Embedding gather: bf16 table rows to f32 activations, one part of a row-split table.

use super::Bf16Rows;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "embed_f32_bf16w",
    params { n_tokens: u32, h2: u32, row0: u32, rows: u32 }
    bindings { table: Read, ids: Read, out: ReadWrite }
}

const WG: u32 = 256;

/// `out[t] = table[ids[t]]` for ids in `row0..row0 + rows` of the table (the rows this part
/// holds), whose `k` is the hidden size.
pub struct Embed<'a> {
    pub table: Bf16Rows<'a>,
    /// u32 [n_tokens].
    pub ids: &'a GpuBuffer,
    pub n_tokens: u32,
    /// f32 [n_tokens, hidden].
    pub out: &'a GpuBuffer,
}

impl Embed<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let table = &self.table;
        let (t, h) = (self.n_tokens as u64, table.k as u64);
        table.need(SHADER)?;
        need(&[(self.ids, t * 4), (self.out, t * h * 4)])?;
        let params = Params {
            n_tokens: self.n_tokens,
            h2: table.k / 2,
            row0: table.row0,
            rows: table.rows,
        };
        let grid = gpu.grid((self.n_tokens * table.k / 2).div_ceil(WG));
        Bindings {
            table: table.buffer.binding(),
            ids: self.ids.binding(),
            out: self.out.binding(),
        }
        .build(gpu, &[], &params, &table.buffer.label, grid)
    }
}
