//! The forward pass on the GPU, in the order of gpt-oss's model.py
//! (https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py): embedding, then per
//! layer attention (norm, qkv, RoPE + cache append, attention with sinks, o_proj + residual)
//! and MoE (norm, router, experts, residual), then the final norm, lm_head and the sampler.
//!
//! [`Forward`] owns what decode and prefill share ([`State`]: the step uniform, the RoPE table,
//! the KV cache) and composes the three paths, each with its own buffers: decode
//! (`decode.rs`, one plan recorded for every token), prefill (`prefill.rs`, a plan per step
//! size) and the sampler (`sampler.rs`, the head and sampling). Every plan runs through
//! [`Plan::record`], and the profiler times the same plans.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};
use crate::kernels::moe::MoeShape;
use crate::kernels::{AttentionLayout, AttentionStep, StepBuffer};
use crate::model::kv_cache::{self, LayerCache};
use crate::model::plan::{self, Plan};
use crate::model::prefill::Prefill;
use crate::model::sampler::Sampler;
use crate::model::weights::Weights;
use crate::model::{decode, fit, rope};

pub use crate::model::prefill::{fitting_chunk, DEFAULT_CHUNK};
pub use crate::model::sampler::{PendingSample, SamplingParams};

/// Floats per token of the fused qkv projection's output: q, then k, then v.
pub(crate) fn qkv_stride(c: &ModelConfig) -> usize {
    c.q_dim() + 2 * c.kv_dim()
}

/// What decode and prefill share: the step uniform (position, token count, sample index),
/// the RoPE table and the KV cache.
pub struct State {
    pub step: StepBuffer,
    pub rope: GpuBuffer,
    pub kv: Vec<LayerCache>,
}

impl State {
    /// Layer `l`'s attention in a step whose q, k and v are in `qkv`.
    pub fn attention<'a>(
        &'a self,
        c: &ModelConfig,
        l: usize,
        qkv: &'a GpuBuffer,
    ) -> AttentionStep<'a> {
        let kv = &self.kv[l];
        AttentionStep {
            layout: AttentionLayout {
                n_heads: c.num_attention_heads as u32,
                n_kv_heads: c.num_key_value_heads as u32,
                head_dim: c.head_dim as u32,
                capacity: kv.capacity,
                window: kv.window,
                qkv_stride: qkv_stride(c) as u32,
            },
            step: &self.step,
            qkv,
            k_cache: &kv.k,
            v_cache: &kv.v,
        }
    }
}

/// The sizes every MoE kernel takes.
pub(crate) fn moe_shape(c: &ModelConfig) -> MoeShape {
    MoeShape {
        hidden: c.hidden_size as u32,
        inter: c.intermediate_size as u32,
        n_experts: c.num_experts as u32,
        k: c.experts_per_token as u32,
    }
}

pub struct Forward {
    pub config: ModelConfig,
    /// Context length: positions 0..ctx.
    pub ctx: usize,
    /// Largest prefill step.
    pub chunk: usize,
    state: State,
    decode: decode::Buffers<GpuBuffer>,
    decode_plan: Plan,
    prefill: Prefill,
    sampler: Sampler,
}

impl Forward {
    /// Allocates the KV cache and activations for `ctx` positions and builds the decode plan.
    /// `max_samples` bounds how many tokens one generation may sample.
    pub fn new(
        gpu: &Gpu,
        weights: &Weights,
        config: &ModelConfig,
        ctx: usize,
        chunk: usize,
        max_samples: usize,
    ) -> Result<Self> {
        let c = config.clone();
        let limit = gpu.max_binding().min(gpu.max_buffer());
        fit::check_ctx(&c, ctx)?;
        let chunk = fitting_chunk(&c, chunk, gpu.max_binding()).clamp(1, ctx);
        let kv_bytes = gpu.precision().kv.element_bytes();
        fit::check_ctx_on_adapter(&c, ctx, chunk, kv_bytes, limit)?;
        let table: Vec<f32> = rope::table(&c, ctx).into_iter().flatten().collect();
        let state = State {
            step: StepBuffer::new(gpu, "step")?,
            rope: gpu.upload_pod("rope.table", &table)?,
            kv: kv_cache::allocate(gpu, &c, ctx, chunk)?,
        };
        let decode = decode::Buffers::new(gpu, &c, ctx)?;
        let mut sampler = Sampler::new(gpu, &c, weights, max_samples)?;
        let decode_plan = decode::build(gpu, &c, &state, &decode, weights, &sampler.tokens)?;
        sampler.set_sampling(
            gpu,
            &c,
            &state,
            weights,
            &decode.x,
            SamplingParams::default(),
        )?;
        Ok(Forward {
            prefill: Prefill::new(gpu, &c, weights, chunk)?,
            config: c,
            ctx,
            chunk,
            state,
            decode,
            decode_plan,
            sampler,
        })
    }

    pub fn set_sampling(&mut self, gpu: &Gpu, weights: &Weights, s: SamplingParams) -> Result<()> {
        let (c, state, x) = (&self.config, &self.state, &self.decode.x);
        self.sampler.set_sampling(gpu, c, state, weights, x, s)
    }

    /// The most samples one generation may take (sample indices 0..max_samples).
    pub fn max_samples(&self) -> usize {
        self.sampler.max_samples
    }

    /// Runs the prompt `ids` at positions pos0.. through the model in prefill steps, then the
    /// head on the last position and the sampler (sample index 0). With `want_logits`, also
    /// returns the logits at every prompt position, [ids.len(), vocab].
    pub fn prefill(
        &mut self,
        gpu: &Gpu,
        w: &Weights,
        ids: &[u32],
        pos0: usize,
        want_logits: bool,
    ) -> Result<Option<Vec<f32>>> {
        fit::check_prompt(&self.config, ids)?;
        if pos0 + ids.len() > self.ctx {
            return Err(Error::argument(
                "prompt",
                format!(
                    "{} prompt tokens at position {pos0} exceed the context of {}",
                    ids.len(),
                    self.ctx
                ),
            ));
        }
        let vocab = self.config.vocab_size;
        // Logits of a whole step must fit one binding: smaller steps when they are wanted.
        let step_tokens = if want_logits {
            (gpu.max_binding() / (vocab * 4) as u64).clamp(1, self.chunk as u64) as usize
        } else {
            self.chunk
        };
        let logits = match want_logits {
            true => Some(gpu.storage("prefill.logits", (step_tokens * vocab * 4) as u64)?),
            false => None,
        };
        let mut all_logits = want_logits.then(Vec::new);
        for t0 in (0..ids.len()).step_by(step_tokens) {
            let n = step_tokens.min(ids.len() - t0);
            let last = t0 + n == ids.len();
            self.prefill_step(gpu, w, &ids[t0..t0 + n], pos0 + t0, logits.as_ref(), last)?;
            if let (Some(lb), Some(out)) = (&logits, all_logits.as_mut()) {
                let bytes = gpu.read_range(lb, 0, (n * vocab * 4) as u64)?;
                out.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes));
            }
            gpu.check("prefill")?;
        }
        self.state.step.set_at(gpu, pos0 + ids.len() - 1, 1, 0);
        let encoder = gpu.encode_pass("prefill head", |pass| {
            self.sampler.head.record(pass, 0);
        });
        gpu.queue.submit([encoder.finish()]);
        Ok(all_logits)
    }

    /// Submits one prefill step of `ids` at position `pos`, with the logits of every position
    /// into `logits` when given. After the `last` step, the last position's residual stream is
    /// copied to the decode path's, where the head reads it.
    fn prefill_step(
        &mut self,
        gpu: &Gpu,
        w: &Weights,
        ids: &[u32],
        pos: usize,
        logits: Option<&GpuBuffer>,
        last: bool,
    ) -> Result<()> {
        let (n, h) = (ids.len(), self.config.hidden_size);
        gpu.write(&self.prefill.buf.ids, 0, bytemuck::cast_slice(ids));
        self.state.step.set_at(gpu, pos, n, 0);
        let logits_plan = match logits {
            Some(lb) => Some(self.prefill.logits_plan(gpu, &self.config, w, n, lb)?),
            None => None,
        };
        let plan = self.prefill.plan(gpu, &self.config, &self.state, w, n)?;
        let mut encoder = gpu.encode_pass("prefill", |pass| {
            plan.record(pass, pos as u32);
            if let Some(p) = &logits_plan {
                p.record(pass, pos as u32);
            }
        });
        if last {
            encoder.copy_buffer_to_buffer(
                &self.prefill.buf.x.buffer,
                ((n - 1) * h * 4) as u64,
                &self.decode.x.buffer,
                0,
                (h * 4) as u64,
            );
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Creates the plan (and so the pipelines) of a full prefill step now, so that shader
    /// compilation is not counted as prefill time.
    pub fn prepare_prefill(&mut self, gpu: &Gpu, w: &Weights) -> Result<()> {
        let chunk = self.chunk;
        self.prefill
            .plan(gpu, &self.config, &self.state, w, chunk)?;
        Ok(())
    }

    /// Starts reading sample `index` back while the GPU goes on (see [`Sampler::request`]).
    pub fn request_sample(&self, gpu: &Gpu, index: usize) -> Result<PendingSample> {
        self.sampler.request(gpu, index)
    }

    /// Runs one decode step (token tokens[0] at `pos`) with every dispatch in its own timed
    /// pass, and returns (kernel name, GPU nanoseconds) per dispatch, in order. None without
    /// timestamp queries.
    pub fn profile_decode_step(&self, gpu: &Gpu, pos: usize) -> Result<Option<Vec<(String, f64)>>> {
        self.state.step.set_at(gpu, pos, 1, 0);
        plan::timed(gpu, &[&self.decode_plan, &self.sampler.head], pos as u32)
    }

    /// Runs one prefill step of `ids` (at most `chunk` tokens) at position 0 with every dispatch
    /// in its own timed pass; returns (kernel name, GPU nanoseconds) per dispatch.
    pub fn profile_prefill_step(
        &mut self,
        gpu: &Gpu,
        w: &Weights,
        ids: &[u32],
    ) -> Result<Option<Vec<(String, f64)>>> {
        fit::check_prompt(&self.config, ids)?;
        let n = ids.len().min(self.chunk);
        gpu.write(&self.prefill.buf.ids, 0, bytemuck::cast_slice(&ids[..n]));
        self.state.step.set_at(gpu, 0, n, 0);
        let plan = self.prefill.plan(gpu, &self.config, &self.state, w, n)?;
        plan::timed(gpu, &[plan], 0)
    }

    /// The logits [vocab] of the last head run: the prompt's last position after
    /// [`prefill`](Self::prefill), the step's position after [`decode_step`](Self::decode_step).
    /// Waits for the GPU; for tests and debugging, not the generation loop.
    pub fn logits(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read_f32(&self.sampler.logits)
    }

    /// Dispatches in one decode step (for the design target of at most 8 per layer).
    pub fn decode_dispatches(&self) -> usize {
        self.decode_plan.len() + self.sampler.head.len()
    }

    /// Records and submits one decode step: the token at tokens[0] at position `pos`, sampling
    /// draw `sample_index`. Returns the submission index.
    pub fn decode_step(
        &self,
        gpu: &Gpu,
        pos: usize,
        sample_index: usize,
    ) -> Result<wgpu::SubmissionIndex> {
        if pos >= self.ctx {
            return Err(Error::argument(
                "pos",
                format!("position {pos} is past the context of {}", self.ctx),
            ));
        }
        if sample_index >= self.sampler.max_samples {
            return Err(Error::argument(
                "sample_index",
                format!(
                    "sample {sample_index} is past the {} planned",
                    self.sampler.max_samples
                ),
            ));
        }
        self.state.step.set_at(gpu, pos, 1, sample_index);
        let encoder = gpu.encode_pass("decode", |pass| {
            self.decode_plan.record(pass, pos as u32);
            self.sampler.head.record(pass, pos as u32);
        });
        Ok(gpu.queue.submit([encoder.finish()]))
    }
}
