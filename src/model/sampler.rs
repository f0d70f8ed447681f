//! The head and the sampler: final norm and lm_head over the last position, then sampling on
//! the GPU. The sampled id stays on the GPU (tokens[0], the next step's embedding input) and
//! is also written to the history, from which it is read back while the next step runs.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};
use crate::kernels::*;
use crate::model::forward::State;
use crate::model::matrix::Product;
use crate::model::plan::Plan;
use crate::model::weights::Weights;

/// Sampling settings for the GPU sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0: greedy.
    pub temperature: f32,
    /// 0: off.
    pub top_k: u32,
    /// 1: off.
    pub top_p: f32,
    pub seed: u32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Workgroups of the lm_head matvec over all its parts (one argmax entry each).
fn lm_head_workgroups(gpu: &Gpu, w: &Weights) -> u32 {
    (w.lm_head.parts.iter())
        .map(|p| matvec_f32_bf16w::workgroups(gpu, p.rows as u32))
        .sum()
}

/// Bytes of the sampler's buffers: logits, per-workgroup maxima (for `argmax_entries`
/// lm_head workgroups), the next token and a history of `max_samples` ids.
pub fn bytes(c: &ModelConfig, argmax_entries: u64, max_samples: usize) -> u64 {
    4 * c.vocab_size as u64 + 8 * argmax_entries + 4 + 4 * max_samples.max(1) as u64
}

pub struct Sampler {
    pub logits: GpuBuffer,
    /// (max logit, id) per lm_head workgroup, for the greedy sampler.
    argmax: GpuBuffer,
    /// The sampler's output: tokens[0] feeds the next embedding.
    pub tokens: GpuBuffer,
    /// Every sampled id, by sample index, for read-back.
    pub history: GpuBuffer,
    pub max_samples: usize,
    sampling: SamplingParams,
    /// lm_head (with the final norm) over the decode path's residual stream, then the sampler.
    pub head: Plan,
    /// Read-back buffers for sampled ids, used in turn.
    staging: Vec<wgpu::Buffer>,
}

impl Sampler {
    /// Buffers for `max_samples` samples; the head is built by [`set_sampling`](Self::set_sampling).
    pub fn new(gpu: &Gpu, c: &ModelConfig, w: &Weights, max_samples: usize) -> Result<Self> {
        let staging = (0..2)
            .map(|i| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("sample read-back {i}")),
                    size: 4,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Sampler {
            logits: gpu.storage("sampler.logits", 4 * c.vocab_size as u64)?,
            argmax: gpu.storage("sampler.argmax", 8 * lm_head_workgroups(gpu, w) as u64)?,
            tokens: gpu.storage("sampler.tokens", 4)?,
            history: gpu.storage("sampler.history", 4 * max_samples.max(1) as u64)?,
            max_samples: max_samples.max(1),
            sampling: SamplingParams::default(),
            head: Plan::default(),
            staging,
        })
    }

    /// Builds the head over `x` (the last position's residual stream) for sampling `s`; a no-op
    /// when `s` is what the head was built for.
    pub fn set_sampling(
        &mut self,
        gpu: &Gpu,
        c: &ModelConfig,
        state: &State,
        w: &Weights,
        x: &GpuBuffer,
        s: SamplingParams,
    ) -> Result<()> {
        if s == self.sampling && !self.head.is_empty() {
            return Ok(());
        }
        let mut head = Plan::default();
        let lm_head = Product::new(&w.lm_head, x, &self.logits)
            .norm(&w.final_norm.buffer, c.rms_norm_eps)
            .argmax(&self.argmax);
        head.push_matrix("lm_head", lm_head.matvec(gpu)?);
        let sample = sample_f32::Sample {
            vocab: c.vocab_size as u32,
            top_k: s.top_k,
            temperature: s.temperature,
            top_p: s.top_p,
            seed: s.seed,
            step: &state.step,
            logits: &self.logits,
            tokens: &self.tokens,
            history: &self.history,
            partials: Some((&self.argmax, lm_head_workgroups(gpu, w))),
        };
        head.push(sample.dispatch(gpu)?);
        self.head = head;
        self.sampling = s;
        Ok(())
    }

    /// Starts reading sample `index` back: a copy into a staging buffer, submitted now (so it
    /// lands behind the step that produced the sample) and mapped asynchronously. The GPU can
    /// run the next step while the CPU waits for this one.
    pub fn request(&self, gpu: &Gpu, index: usize) -> Result<PendingSample> {
        let staging = &self.staging[index % self.staging.len()];
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sample read-back"),
            });
        encoder.copy_buffer_to_buffer(&self.history.buffer, (index * 4) as u64, staging, 0, 4);
        let submission = gpu.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        Ok(PendingSample {
            staging: staging.clone(),
            submission,
            rx,
        })
    }
}

/// A sampled id on its way back to the CPU.
pub struct PendingSample {
    staging: wgpu::Buffer,
    submission: wgpu::SubmissionIndex,
    rx: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl PendingSample {
    /// Waits for the copy (not for work submitted after it) and returns the id.
    pub fn wait(self, gpu: &Gpu) -> Result<u32> {
        let failed = |message: String| Error::Map {
            label: "sample read-back".into(),
            message,
        };
        gpu.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(self.submission),
                timeout: None,
            })
            .map_err(|e| Error::GpuInternal {
                label: "sample read-back".into(),
                message: e.to_string(),
            })?;
        gpu.check("decode")?;
        if !matches!(self.rx.recv(), Ok(Ok(()))) {
            return Err(failed("mapping failed".into()));
        }
        let id = {
            let view =
                (self.staging.slice(..).get_mapped_range()).map_err(|e| failed(e.to_string()))?;
            u32::from_le_bytes([view[0], view[1], view[2], view[3]])
        };
        self.staging.unmap();
        Ok(id)
    }
}
