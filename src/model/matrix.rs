//! Products of a stored weight matrix, which may be split by rows into several buffers (see
//! `weights::plan_row_split`): one dispatch per part, each writing its rows of the output.
//! Decode multiplies one token (matvec_f32_bf16w, with the RMSNorm fused and optional extra
//! outputs); prefill multiplies a step of tokens (matmul_f32_bf16w, normalised beforehand).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::kernels::{
    embed_f32_bf16w, matmul_f16_bf16w, matmul_f32_bf16w, matvec_f32_bf16w, Bf16Rows,
};
use crate::model::weights::{Bf16Matrix, MatrixPart, Weights};

/// What the cooperative-matrix matmul reads besides the weights: see [`Product::f16_shifts`].
#[derive(Clone, Copy)]
struct F16Shifts<'a> {
    x16: &'a GpuBuffer,
    x_shift: &'a GpuBuffer,
    w_shifts: &'a [GpuBuffer],
}

/// `out = m norm(x) + bias` (added to `out` with `residual`), built up with the methods below.
pub struct Product<'a> {
    m: &'a Bf16Matrix,
    x: &'a GpuBuffer,
    out: &'a GpuBuffer,
    bias: Option<&'a GpuBuffer>,
    residual: bool,
    /// Decode only: RMSNorm of x with this gain and eps first.
    norm: Option<(&'a GpuBuffer, f32)>,
    /// Decode only: the normalised input, written by the first part.
    normed_out: Option<&'a GpuBuffer>,
    /// Decode only: per-workgroup (max, id) pairs, indexed across parts.
    argmax: Option<&'a GpuBuffer>,
    /// Prefill only: x as two f16 parts after each token's shift and the shifts
    /// (row_shift_f32's x16 and shift), and the weight rows' shifts (one buffer per part,
    /// weight_shift_bf16w), which let the matmul run on cooperative matrices where the
    /// device has them.
    shift: Option<F16Shifts<'a>>,
}

impl<'a> Product<'a> {
    pub fn new(m: &'a Bf16Matrix, x: &'a GpuBuffer, out: &'a GpuBuffer) -> Self {
        Product {
            m,
            x,
            out,
            bias: None,
            residual: false,
            norm: None,
            normed_out: None,
            argmax: None,
            shift: None,
        }
    }

    pub fn f16_shifts(
        self,
        x16: &'a GpuBuffer,
        x_shift: &'a GpuBuffer,
        w_shifts: &'a [GpuBuffer],
    ) -> Self {
        let shift = Some(F16Shifts {
            x16,
            x_shift,
            w_shifts,
        });
        Product { shift, ..self }
    }

    pub fn bias(self, bias: &'a GpuBuffer) -> Self {
        let bias = Some(bias);
        Product { bias, ..self }
    }

    /// Adds to `out` instead of overwriting it.
    pub fn residual(self) -> Self {
        Product {
            residual: true,
            ..self
        }
    }

    pub fn norm(self, gain: &'a GpuBuffer, eps: f32) -> Self {
        let norm = Some((gain, eps));
        Product { norm, ..self }
    }

    pub fn normed_out(self, buf: &'a GpuBuffer) -> Self {
        let normed_out = Some(buf);
        Product { normed_out, ..self }
    }

    pub fn argmax(self, buf: &'a GpuBuffer) -> Self {
        let argmax = Some(buf);
        Product { argmax, ..self }
    }

    /// One token: a matvec per part.
    pub fn matvec(&self, gpu: &Gpu) -> Result<Vec<Dispatch>> {
        let mut argmax_offset = 0;
        (self.m.parts.iter().enumerate())
            .map(|(i, p)| {
                let d = matvec_f32_bf16w::Matvec {
                    w: part_rows(p, self.m.cols),
                    x: self.x,
                    norm: self.norm,
                    bias: self.bias,
                    residual: self.residual,
                    out: self.out,
                    normed_out: self.normed_out.filter(|_| i == 0),
                    argmax: self.argmax.map(|a| (a, argmax_offset)),
                }
                .dispatch(gpu);
                argmax_offset += matvec_f32_bf16w::workgroups(gpu, p.rows as u32);
                d
            })
            .collect()
    }

    /// `n_tokens` tokens: a tiled matmul per part, on cooperative matrices where the device
    /// has them, `f16_shifts` gave the shifts and the row length suits the kernel. The batched
    /// kernels have no fused norm or extra outputs; asking for them is a programming error,
    /// reported rather than ignored.
    pub fn matmul(&self, gpu: &Gpu, n_tokens: usize) -> Result<Vec<Dispatch>> {
        if self.norm.is_some() || self.normed_out.is_some() || self.argmax.is_some() {
            return Err(Error::Shape {
                what: format!("{}: matmul_f32_bf16w options", self.out.label),
                expected: "no fused norm, normalised output or argmax".into(),
                actual: "one of them".into(),
            });
        }
        let fits = self.m.cols as u32 % matmul_f16_bf16w::KB == 0;
        let wanted = gpu.tuning().coop_moe_only != Some(true);
        let coop = self
            .shift
            .filter(|_| gpu.precision().coop && fits && wanted);
        if let Some(F16Shifts { w_shifts, .. }) = coop {
            if w_shifts.len() != self.m.parts.len() {
                return Err(Error::Shape {
                    what: format!("{}: weight shift buffers", self.out.label),
                    expected: format!("{} (one per part)", self.m.parts.len()),
                    actual: w_shifts.len().to_string(),
                });
            }
        }
        (self.m.parts.iter().enumerate())
            .map(|(i, p)| {
                if let Some(s) = coop {
                    return matmul_f16_bf16w::MatmulF16 {
                        w: part_rows(p, self.m.cols),
                        w_shift: &s.w_shifts[i],
                        n_tokens: n_tokens as u32,
                        x16: s.x16,
                        shift: s.x_shift,
                        bias: self.bias,
                        residual: self.residual,
                        out: self.out,
                        out_stride: self.m.rows as u32,
                    }
                    .dispatch(gpu);
                }
                matmul_f32_bf16w::Matmul {
                    w: part_rows(p, self.m.cols),
                    n_tokens: n_tokens as u32,
                    x: self.x,
                    bias: self.bias,
                    residual: self.residual,
                    out: self.out,
                    out_stride: self.m.rows as u32,
                }
                .dispatch(gpu)
            })
            .collect()
    }
}

/// The embedding of `n_tokens` ids from `ids` into `out`, one dispatch per stored part of the
/// table (decode and prefill).
pub fn embed<'a>(
    gpu: &'a Gpu,
    c: &'a ModelConfig,
    w: &'a Weights,
    ids: &'a GpuBuffer,
    n_tokens: u32,
    out: &'a GpuBuffer,
) -> impl Iterator<Item = Result<Dispatch>> + 'a {
    w.embedding.parts.iter().map(move |p| {
        embed_f32_bf16w::Embed {
            table: part_rows(p, c.hidden_size),
            ids,
            n_tokens,
            out,
        }
        .dispatch(gpu)
    })
}

/// The whole of `m` as one part, for a kernel that needs every row in one binding (the decode
/// router: its top-k sees all logits); an error naming the matrix if it was split.
pub fn whole(m: &Bf16Matrix) -> Result<Bf16Rows<'_>> {
    match m.parts.as_slice() {
        [p] => Ok(part_rows(p, m.cols)),
        parts => Err(Error::Shape {
            what: format!(
                "'{}': buffers holding the matrix",
                parts.first().map_or("", |p| p.buffer.label.as_str())
            ),
            expected: "1 (raise the binding limit)".into(),
            actual: parts.len().to_string(),
        }),
    }
}

/// Part `p` of a matrix with `cols` columns, as the bf16 kernels read it.
pub(crate) fn part_rows(p: &MatrixPart, cols: usize) -> Bf16Rows<'_> {
    Bf16Rows {
        buffer: &p.buffer,
        rows: p.rows as u32,
        k: cols as u32,
        row0: p.first_row as u32,
    }
}
