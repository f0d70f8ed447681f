//! The model's weights on the GPU, uploaded straight from a [`WeightSource`] (the mmap, for a
//! checkpoint) and split to fit the device's largest binding.
//!
//! On the GPU:
//! - BF16 matrices [rows, cols] keep their bytes: two BF16 per u32 word, element 2i in the low
//!   half. Split by rows ([`Bf16Matrix::parts`]): all parts but the last hold the same number of
//!   rows, so the part of row r is r / parts[0].rows.
//! - Norm gains, biases and sinks become f32 (exact from BF16), one buffer each.
//! - Experts keep their MXFP4 bytes: blocks [E, out, in/32, 16] and scales [E, out, in/32] as
//!   u8 packed four per u32 word; their biases become f32 [E, out]. Split by expert ranges; one
//!   layer uses the same ranges ([`LayerWeights::expert_ranges`]) for all six expert tensors.
//!
//! Every buffer is labelled with the tensor's Hugging Face name, plus ".partN" when split.

use std::collections::HashMap;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::checkpoint::names::{ExpertMatrix, LayerTensor, TensorId, TensorKind};
use crate::checkpoint::tensor::{
    canonical_shape, element_count, shape_string, DType, WeightSource,
};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};

/// Rows [first_row, first_row + rows) of a BF16 matrix.
pub struct MatrixPart {
    pub buffer: GpuBuffer,
    pub first_row: usize,
    pub rows: usize,
}

/// A BF16 matrix [rows, cols] (row-major, [out, in] for projections; [vocab, hidden] for the
/// embedding and lm_head), split by rows.
pub struct Bf16Matrix {
    pub rows: usize,
    pub cols: usize,
    pub parts: Vec<MatrixPart>,
}

impl Bf16Matrix {
    /// The part holding `row`, and the row's index within it.
    pub fn locate(&self, row: usize) -> Option<(&MatrixPart, usize)> {
        self.parts
            .iter()
            .find(|p| row >= p.first_row && row < p.first_row + p.rows)
            .map(|p| (p, row - p.first_row))
    }
}

/// A small f32 vector: a norm gain, a bias or the sinks.
pub struct F32Vector {
    pub buffer: GpuBuffer,
    pub len: usize,
}

/// Experts [first_expert, first_expert + n_experts) of one expert tensor.
pub struct ExpertPart {
    pub buffer: GpuBuffer,
    pub first_expert: usize,
    pub n_experts: usize,
}

/// One expert tensor, split by expert ranges.
pub struct ExpertTensor {
    pub parts: Vec<ExpertPart>,
}

/// One expert matrix of a layer (gate_up or down), all experts, in MXFP4.
pub struct ExpertWeights {
    /// Output rows per expert: 2I for gate_up (gate even, up odd), H for down.
    pub rows: usize,
    /// Input width per expert (a multiple of 32): H for gate_up, I for down.
    pub cols: usize,
    /// [E, rows, cols/32, 16] u8.
    pub blocks: ExpertTensor,
    /// [E, rows, cols/32] u8, E8M0 (value 2^(s-127)); never 0xFF (the loader rejects it).
    pub scales: ExpertTensor,
    /// [E, rows] f32.
    pub bias: ExpertTensor,
}

impl ExpertWeights {
    /// Each stored part (a range of experts), as the MoE kernels bind it.
    pub fn parts(&self) -> Vec<crate::kernels::moe::Experts<'_>> {
        (self
            .blocks
            .parts
            .iter()
            .zip(&self.scales.parts)
            .zip(&self.bias.parts))
        .map(|((b, s), bias)| crate::kernels::moe::Experts {
            blocks: &b.buffer,
            scales: &s.buffer,
            bias: &bias.buffer,
            e0: b.first_expert as u32,
            n_part: b.n_experts as u32,
        })
        .collect()
    }
}

/// One transformer layer: `TransformerBlock` in gpt-oss's model.py
/// (https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py).
pub struct LayerWeights {
    /// Pre-attention RMSNorm gain [H].
    pub attn_norm: F32Vector,
    /// q, k and v stacked by rows, [q_dim + 2 kv_dim, H], so that one matvec (or matmul)
    /// computes all three, with the layout the RoPE kernel reads: [q | k | v].
    pub qkv: Bf16Matrix,
    /// [q_dim + 2 kv_dim].
    pub qkv_bias: F32Vector,
    /// [H, q_dim].
    pub o: Bf16Matrix,
    pub o_bias: F32Vector,
    /// One logit per query head [num_attention_heads].
    pub sinks: F32Vector,
    /// Pre-MoE RMSNorm gain [H].
    pub mlp_norm: F32Vector,
    /// [E, H].
    pub router: Bf16Matrix,
    pub router_bias: F32Vector,
    pub gate_up: ExpertWeights,
    pub down: ExpertWeights,
    /// (first_expert, n_experts) of every part of every expert tensor of this layer.
    pub expert_ranges: Vec<(usize, usize)>,
}

pub struct Weights {
    /// [vocab, H].
    pub embedding: Bf16Matrix,
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm gain [H].
    pub final_norm: F32Vector,
    /// Unembedding [vocab, H]; separate from the embedding in gpt-oss.
    pub lm_head: Bf16Matrix,
}

/// How one tensor is laid out on the GPU.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TensorPlan {
    /// The tensor's Hugging Face name, which labels its buffers (plus ".partN" when there
    /// are several).
    pub label: String,
    /// Rows (matrices), experts (expert tensors) or 1 (vectors).
    pub units: usize,
    /// GPU bytes per unit.
    pub unit_bytes: u64,
    /// (first unit, units) per buffer.
    pub parts: Vec<(usize, usize)>,
}

impl TensorPlan {
    pub fn part_label(&self, i: usize) -> String {
        if self.parts.len() > 1 {
            format!("{}.part{i}", self.label)
        } else {
            self.label.clone()
        }
    }

    /// Bytes allocated on the GPU (each part padded to a multiple of 4).
    pub fn gpu_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|&(_, n)| padded(n as u64 * self.unit_bytes))
            .sum()
    }
}

fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}

/// Splits `rows` rows of `row_bytes` bytes into parts of at most `limit` bytes (after padding
/// to a multiple of 4): every part but the last holds as many rows as fit. `None` when a single
/// row does not fit.
pub fn plan_row_split(rows: usize, row_bytes: u64, limit: u64) -> Option<Vec<(usize, usize)>> {
    // A part of at most limit/4*4 bytes still fits after padding to a multiple of 4.
    let limit = limit / 4 * 4;
    if row_bytes == 0 {
        return Some(if rows == 0 { vec![] } else { vec![(0, rows)] });
    }
    let per = usize::try_from(limit / row_bytes).ok()?;
    if per == 0 {
        return None;
    }
    Some(
        (0..rows)
            .step_by(per)
            .map(|first| (first, per.min(rows - first)))
            .collect(),
    )
}

/// `rows` rows of `row_bytes` bytes split by [`plan_row_split`] under `gpu`'s binding and buffer
/// limits, as (buffer label, first row, rows): `label.partN` when there are several parts.
pub fn row_parts(
    gpu: &Gpu,
    label: &str,
    rows: usize,
    row_bytes: u64,
) -> Result<Vec<(String, usize, usize)>> {
    let limit = gpu.max_binding().min(gpu.max_buffer());
    let split = plan_row_split(rows, row_bytes, limit).ok_or_else(|| Error::BindingTooLarge {
        label: label.to_string(),
        bytes: row_bytes,
        limit,
    })?;
    let several = split.len() > 1;
    Ok(split
        .into_iter()
        .enumerate()
        .map(|(i, (first, n))| {
            let part = if several {
                format!("{label}.part{i}")
            } else {
                label.to_string()
            };
            (part, first, n)
        })
        .collect())
}

/// Splits `experts` experts into ranges such that, for every tensor whose per-expert GPU size
/// is in `expert_bytes`, a range fits `limit`. One plan serves all of a layer's expert tensors.
pub fn plan_expert_split(
    experts: usize,
    expert_bytes: &[u64],
    limit: u64,
) -> Option<Vec<(usize, usize)>> {
    let largest = expert_bytes.iter().copied().max().unwrap_or(0);
    plan_row_split(experts, largest, limit)
}

/// GPU bytes per unit (row, expert or whole vector) of `id`.
fn unit_bytes(c: &ModelConfig, id: TensorId) -> (usize, u64) {
    let shape = canonical_shape(c, id);
    let elements = element_count(&shape).unwrap_or(0) as u64;
    let first = shape.first().copied().unwrap_or(1).max(1);
    match id.kind() {
        TensorKind::Matrix => (first, elements / first as u64 * 2),
        TensorKind::Norm | TensorKind::Bias | TensorKind::Sinks => (1, elements * 4),
        TensorKind::ExpertBlocks | TensorKind::ExpertScales => (first, elements / first as u64),
        TensorKind::ExpertBias => (first, elements / first as u64 * 4),
    }
}

/// The upload plan of every tensor under a binding limit of `limit` bytes.
pub fn plan(c: &ModelConfig, limit: u64) -> Result<Vec<TensorPlan>> {
    let mut layer_ranges: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    let mut out = Vec::new();
    for id in TensorId::all(c.num_hidden_layers) {
        let label = id.hf_name();
        let (units, unit) = unit_bytes(c, id);
        let too_large = |bytes: u64| Error::BindingTooLarge {
            label: label.clone(),
            bytes,
            limit,
        };
        let parts = match (id, id.kind()) {
            (TensorId::Layer(l, _), TensorKind::ExpertBlocks | TensorKind::ExpertScales)
            | (TensorId::Layer(l, _), TensorKind::ExpertBias) => {
                if let Some(r) = layer_ranges.get(&l) {
                    r.clone()
                } else {
                    let sizes: Vec<u64> = ExpertMatrix::ALL
                        .iter()
                        .flat_map(|m| m.tensors())
                        .map(|t| unit_bytes(c, TensorId::Layer(l, t)).1)
                        .collect();
                    let largest = sizes.iter().copied().max().unwrap_or(0);
                    let r = plan_expert_split(units, &sizes, limit)
                        .ok_or_else(|| too_large(largest))?;
                    layer_ranges.insert(l, r.clone());
                    r
                }
            }
            (_, TensorKind::Matrix) => {
                plan_row_split(units, unit, limit).ok_or_else(|| too_large(unit))?
            }
            _ => {
                if padded(unit) > limit {
                    return Err(too_large(unit));
                }
                vec![(0, 1)]
            }
        };
        out.push(TensorPlan {
            label,
            units,
            unit_bytes: unit,
            parts,
        });
    }
    Ok(out)
}

/// Uploads go through wgpu's staging memory, which is only recycled after a submit completes:
/// submit this often so a 13 GB upload does not hold 13 GB of staging. Each flush waits for
/// the one before it, not for itself, so the GPU's copies overlap the next CPU copies and at
/// most two flushes' worth of staging is alive.
const FLUSH_BYTES: u64 = 512 << 20;

struct Uploader<'a> {
    gpu: &'a Gpu,
    src: &'a dyn WeightSource,
    plans: HashMap<String, TensorPlan>,
    bar: ProgressBar,
    since_flush: u64,
    /// The previous flush's submission, waited for at the next flush.
    in_flight: Option<wgpu::SubmissionIndex>,
}

impl Weights {
    /// GPU memory the weights take under a binding limit of `max_binding` bytes (the split adds
    /// only padding).
    pub fn gpu_bytes(config: &ModelConfig, max_binding: u64) -> Result<u64> {
        Ok(plan(config, max_binding)?
            .iter()
            .map(TensorPlan::gpu_bytes)
            .sum())
    }

    /// Uploads every tensor of `src`, checked against the canonical dtype and shape, split to
    /// the device's binding and buffer limits. `progress` draws a bar on stderr.
    pub fn upload(gpu: &Gpu, src: &dyn WeightSource, progress: bool) -> Result<Weights> {
        let c = src.config();
        let limit = gpu.max_binding().min(gpu.max_buffer());
        let plans = plan(c, limit)?;
        let total: u64 = plans.iter().map(TensorPlan::gpu_bytes).sum();
        let bar = if progress {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "loading {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} \
                 eta {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut up = Uploader {
            gpu,
            src,
            plans: plans.into_iter().map(|p| (p.label.clone(), p)).collect(),
            bar,
            since_flush: 0,
            in_flight: None,
        };
        let weights = up.all(c)?;
        up.finish("weights")?;
        up.bar.finish_and_clear();
        Ok(weights)
    }

    /// Every buffer, in load order (for read-back tests and memory accounting).
    pub fn buffers(&self) -> Vec<&GpuBuffer> {
        let mut v = Vec::new();
        fn matrix<'a>(v: &mut Vec<&'a GpuBuffer>, x: &'a Bf16Matrix) {
            v.extend(x.parts.iter().map(|p| &p.buffer));
        }
        fn experts<'a>(v: &mut Vec<&'a GpuBuffer>, x: &'a ExpertWeights) {
            for t in [&x.blocks, &x.scales, &x.bias] {
                v.extend(t.parts.iter().map(|p| &p.buffer));
            }
        }
        matrix(&mut v, &self.embedding);
        for l in &self.layers {
            v.push(&l.attn_norm.buffer);
            matrix(&mut v, &l.qkv);
            v.push(&l.qkv_bias.buffer);
            matrix(&mut v, &l.o);
            v.push(&l.o_bias.buffer);
            v.push(&l.sinks.buffer);
            v.push(&l.mlp_norm.buffer);
            matrix(&mut v, &l.router);
            v.push(&l.router_bias.buffer);
            experts(&mut v, &l.gate_up);
            experts(&mut v, &l.down);
        }
        v.push(&self.final_norm.buffer);
        matrix(&mut v, &self.lm_head);
        v
    }
}

impl Uploader<'_> {
    fn all(&mut self, c: &ModelConfig) -> Result<Weights> {
        use LayerTensor::*;
        let embedding = self.matrix(TensorId::Embedding)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let id = |t| TensorId::Layer(l, t);
            let attn_norm = self.vector(id(AttnNorm))?;
            let qkv = self.stacked_matrix(l, &[id(QWeight), id(KWeight), id(VWeight)])?;
            let qkv_bias = self.stacked_vector(l, &[id(QBias), id(KBias), id(VBias)])?;
            let o = self.matrix(id(OWeight))?;
            let o_bias = self.vector(id(OBias))?;
            let sinks = self.vector(id(Sinks))?;
            let mlp_norm = self.vector(id(MlpNorm))?;
            let router = self.matrix(id(RouterWeight))?;
            let router_bias = self.vector(id(RouterBias))?;
            let gate_up = self.experts(c, l, ExpertMatrix::GateUp)?;
            let down = self.experts(c, l, ExpertMatrix::Down)?;
            let expert_ranges = gate_up
                .blocks
                .parts
                .iter()
                .map(|p| (p.first_expert, p.n_experts))
                .collect();
            layers.push(LayerWeights {
                attn_norm,
                qkv,
                qkv_bias,
                o,
                o_bias,
                sinks,
                mlp_norm,
                router,
                router_bias,
                gate_up,
                down,
                expert_ranges,
            });
        }
        let final_norm = self.vector(TensorId::FinalNorm)?;
        let lm_head = self.matrix(TensorId::LmHead)?;
        Ok(Weights {
            embedding,
            layers,
            final_norm,
            lm_head,
        })
    }

    fn plan(&self, id: TensorId) -> Result<&TensorPlan> {
        self.plans
            .get(&id.hf_name())
            .ok_or_else(|| Error::Checkpoint {
                path: Default::default(),
                message: format!("no upload plan for {}", id.hf_name()),
            })
    }

    /// Uploads unit ranges of `data` as the plan's parts.
    /// Uploads `id` by its plan; `part(buffer, first unit, units)` makes each part.
    fn parts<P>(
        &mut self,
        id: TensorId,
        part: impl Fn(GpuBuffer, usize, usize) -> P,
    ) -> Result<Vec<P>> {
        let data = gpu_data(self.src, id)?;
        let plan = self.plan(id)?.clone();
        let mut out = Vec::with_capacity(plan.parts.len());
        for (i, &(first, n)) in plan.parts.iter().enumerate() {
            let label = plan.part_label(i);
            let start = first as u64 * plan.unit_bytes;
            let end = start + n as u64 * plan.unit_bytes;
            let bytes = data
                .get(start as usize..end as usize)
                .ok_or_else(|| Error::Shape {
                    what: format!("{label} bytes"),
                    expected: format!("at least {end}"),
                    actual: data.len().to_string(),
                })?;
            self.bar.set_message(label.clone());
            let buf = self.gpu.upload_parallel(&label, bytes)?;
            self.uploaded(&label, bytes.len() as u64)?;
            // Padding bytes count towards the planned total.
            self.bar
                .inc(padded(bytes.len() as u64) - bytes.len() as u64);
            out.push(part(buf, first, n));
        }
        Ok(out)
    }

    /// Counts `bytes` as done; every FLUSH_BYTES the staging copies are submitted and waited
    /// for, which bounds the host memory they hold.
    fn uploaded(&mut self, label: &str, bytes: u64) -> Result<()> {
        self.bar.inc(bytes);
        self.since_flush += bytes;
        if self.since_flush >= FLUSH_BYTES {
            self.flush(label)?;
        }
        Ok(())
    }

    fn flush(&mut self, label: &str) -> Result<()> {
        let now = self.gpu.queue.submit([]);
        if let Some(prev) = self.in_flight.replace(now) {
            self.gpu
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| Error::GpuInternal {
                    label: label.to_string(),
                    message: e.to_string(),
                })?;
            self.gpu.check(label)?;
        }
        self.since_flush = 0;
        Ok(())
    }

    /// Submits what is left and waits for all of it.
    fn finish(&mut self, label: &str) -> Result<()> {
        self.gpu.queue.submit([]);
        self.gpu.wait(label)?;
        self.in_flight = None;
        self.since_flush = 0;
        Ok(())
    }

    fn matrix(&mut self, id: TensorId) -> Result<Bf16Matrix> {
        let shape = canonical_shape(self.src.config(), id);
        let parts = self.parts(id, |buffer, first_row, rows| MatrixPart {
            buffer,
            first_row,
            rows,
        })?;
        Ok(Bf16Matrix {
            rows: shape.first().copied().unwrap_or(0),
            cols: shape.get(1).copied().unwrap_or(0),
            parts,
        })
    }

    /// Uploads `data` (whole rows of `row_bytes`) split by rows under the binding limit.
    fn upload_rows(&mut self, label: &str, data: &[u8], row_bytes: u64) -> Result<Vec<MatrixPart>> {
        let rows = (data.len() as u64 / row_bytes.max(1)) as usize;
        let split = row_parts(self.gpu, label, rows, row_bytes)?;
        let mut parts = Vec::with_capacity(split.len());
        for (part_label, first, n) in split {
            let bytes = &data
                [(first as u64 * row_bytes) as usize..((first + n) as u64 * row_bytes) as usize];
            self.bar.set_message(part_label.clone());
            let buffer = self.gpu.upload_parallel(&part_label, bytes)?;
            self.uploaded(&part_label, bytes.len() as u64)?;
            parts.push(MatrixPart {
                buffer,
                first_row: first,
                rows: n,
            });
        }
        Ok(parts)
    }

    /// BF16 matrices with the same column count stacked by rows into one (q, k, v).
    fn stacked_matrix(&mut self, layer: usize, ids: &[TensorId]) -> Result<Bf16Matrix> {
        let c = self.src.config();
        let cols = canonical_shape(c, ids[0]).get(1).copied().unwrap_or(0);
        let mut pieces = Vec::with_capacity(ids.len());
        let mut rows = 0;
        for &id in ids {
            rows += canonical_shape(c, id).first().copied().unwrap_or(0);
            pieces.push(gpu_data(self.src, id)?);
        }
        let label = format!("model.layers.{layer}.self_attn.qkv_proj.weight");
        let row_bytes = cols as u64 * 2;
        let limit = self.gpu.max_binding().min(self.gpu.max_buffer());
        if plan_row_split(rows, row_bytes, limit).is_some_and(|s| s.len() == 1) {
            // One buffer: q, k and v go straight from the mmap into it, without first being
            // concatenated (720 MB of serial copying for gpt-oss-20b).
            let slices: Vec<&[u8]> = pieces.iter().map(|p| p.as_ref()).collect();
            self.bar.set_message(label.clone());
            let buffer = self.gpu.upload_gather(&label, &slices)?;
            self.uploaded(&label, buffer.bytes)?;
            let parts = vec![MatrixPart {
                buffer,
                first_row: 0,
                rows,
            }];
            return Ok(Bf16Matrix { rows, cols, parts });
        }
        let data = pieces.concat();
        let parts = self.upload_rows(&label, &data, row_bytes)?;
        Ok(Bf16Matrix { rows, cols, parts })
    }

    /// f32 vectors concatenated into one (the q, k, v biases).
    fn stacked_vector(&mut self, layer: usize, ids: &[TensorId]) -> Result<F32Vector> {
        let mut data = Vec::new();
        for &id in ids {
            data.extend_from_slice(&gpu_data(self.src, id)?);
        }
        let label = format!("model.layers.{layer}.self_attn.qkv_proj.bias");
        self.bar.set_message(label.clone());
        let buffer = self.gpu.upload(&label, &data)?;
        self.bar.inc(padded(data.len() as u64));
        Ok(F32Vector {
            len: data.len() / 4,
            buffer,
        })
    }

    fn vector(&mut self, id: TensorId) -> Result<F32Vector> {
        let len = element_count(&canonical_shape(self.src.config(), id)).unwrap_or(0);
        let mut parts = self.parts(id, |buffer, _, _| buffer)?;
        let buffer = parts.pop().ok_or_else(|| Error::Shape {
            what: id.hf_name(),
            expected: "one buffer".into(),
            actual: "none".into(),
        })?;
        Ok(F32Vector { buffer, len })
    }

    fn expert_tensor(&mut self, id: TensorId) -> Result<ExpertTensor> {
        let parts = self.parts(id, |buffer, first_expert, n_experts| ExpertPart {
            buffer,
            first_expert,
            n_experts,
        })?;
        Ok(ExpertTensor { parts })
    }

    fn experts(&mut self, c: &ModelConfig, l: usize, m: ExpertMatrix) -> Result<ExpertWeights> {
        let [b, s, bias] = m.tensors();
        let (rows, cols) = m.out_in(c);
        Ok(ExpertWeights {
            rows,
            cols,
            blocks: self.expert_tensor(TensorId::Layer(l, b))?,
            scales: self.expert_tensor(TensorId::Layer(l, s))?,
            bias: self.expert_tensor(TensorId::Layer(l, bias))?,
        })
    }
}

/// The tensor's bytes as they go on the GPU: BF16 and U8 unchanged, vectors and expert biases
/// as f32. Checks the source against the canonical dtype and shape: a synthetic source gets no
/// other check.
fn gpu_data(src: &dyn WeightSource, id: TensorId) -> Result<std::borrow::Cow<'_, [u8]>> {
    let c = src.config();
    let t = src.tensor(id)?;
    let want_shape = canonical_shape(c, id);
    let kind = id.kind();
    let bad = |what: &str, expected: String, actual: String| Error::Shape {
        what: format!("{} ({}) {what}", id.hf_name(), t.source),
        expected,
        actual,
    };
    if t.shape != want_shape {
        return Err(bad(
            "shape",
            shape_string(&want_shape),
            shape_string(&t.shape),
        ));
    }
    if !kind.allowed_dtypes().contains(&t.dtype) {
        let allowed: Vec<_> = kind.allowed_dtypes().iter().map(|d| d.name()).collect();
        return Err(bad("dtype", allowed.join(" or "), t.dtype.name().into()));
    }
    let elements = element_count(&want_shape).unwrap_or(0);
    if t.data.len() != elements * t.dtype.size() {
        return Err(bad(
            "byte length",
            (elements * t.dtype.size()).to_string(),
            t.data.len().to_string(),
        ));
    }
    let data = match kind {
        TensorKind::Norm | TensorKind::Bias | TensorKind::Sinks | TensorKind::ExpertBias
            if t.dtype != DType::F32 =>
        {
            std::borrow::Cow::Owned(bytemuck::cast_slice(&t.to_f32()).to_vec())
        }
        _ => t.data,
    };
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_split_fills_parts_and_keeps_the_remainder_last() {
        // 10 rows of 100 bytes under a 350-byte limit: 3 rows (300 bytes) per part.
        assert_eq!(
            plan_row_split(10, 100, 350),
            Some(vec![(0, 3), (3, 3), (6, 3), (9, 1)])
        );
        // Exactly fitting.
        assert_eq!(plan_row_split(4, 256, 1024), Some(vec![(0, 4)]));
        assert_eq!(plan_row_split(5, 256, 1024), Some(vec![(0, 4), (4, 1)]));
        // A row larger than the limit cannot be split by rows.
        assert_eq!(plan_row_split(3, 2000, 1024), None);
        assert_eq!(plan_row_split(0, 64, 1024), Some(vec![]));
    }

    #[test]
    fn row_split_leaves_room_for_padding() {
        // 3-byte rows under a 10-byte limit: 3 rows make 9 bytes, padded to 12 > 10. The limit
        // rounds down to 8 first, so 2 rows (6 bytes, padded 8) per part.
        let parts = plan_row_split(5, 3, 10).unwrap();
        assert_eq!(parts, vec![(0, 2), (2, 2), (4, 1)]);
        for (_, n) in parts {
            assert!(padded(n as u64 * 3) <= 10);
        }
    }

    #[test]
    fn row_split_covers_every_row_once() {
        for rows in [1usize, 7, 64, 201088] {
            for (row_bytes, limit) in [(5760u64, 1 << 20), (64 * 2, 1 << 20), (1, 4), (13, 1000)] {
                let parts = plan_row_split(rows, row_bytes, limit).unwrap();
                let mut next = 0;
                for &(first, n) in &parts {
                    assert_eq!(first, next);
                    assert!(n > 0 && padded(n as u64 * row_bytes) <= limit);
                    next += n;
                }
                assert_eq!(next, rows);
                // Equal parts except the last: a kernel finds a row's part by division.
                assert!(parts.iter().rev().skip(1).all(|&(_, n)| n == parts[0].1));
            }
        }
    }

    #[test]
    fn expert_split_uses_the_largest_tensor() {
        // gpt-oss-20b gate_up: 5760 x 1440 block bytes per expert = 8294400; scales and biases
        // are smaller. Under lavapipe's 128 MiB, 16 experts fit per part.
        let sizes = [
            5760 * 1440u64,
            5760 * 90,
            5760 * 4,
            2880 * 1440,
            2880 * 90,
            2880 * 4,
        ];
        let parts = plan_expert_split(32, &sizes, 128 << 20).unwrap();
        assert_eq!(parts, vec![(0, 16), (16, 16)]);
        assert_eq!(plan_expert_split(32, &sizes, 4 << 20), None);
        assert_eq!(plan_expert_split(32, &sizes, 1 << 40), Some(vec![(0, 32)]));
    }
}
