//! Generation: prefill the prompt, then the decode loop with the sampled ids streamed back.
//!
//! The loop keeps one step in flight: step i+1 is submitted before sample i is read back, so
//! the GPU runs while the CPU handles a token. A stop token is therefore seen one step late;
//! the extra step only writes the KV cache past the end of the answer.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::forward::{Forward, SamplingParams, DEFAULT_CHUNK};
use crate::model::{fit, Model};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends after one of these ids (it is reported, then the loop stops).
    pub stop_ids: Vec<u32>,
    /// Also return the logits at every prompt position.
    pub prompt_logits: bool,
}

#[derive(Clone, Debug, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the previous generation (not prefilled again).
    pub reused_tokens: usize,
    /// From submitting the prompt to having the first sampled id on the CPU.
    pub prefill_time: Duration,
    pub generated: usize,
    /// From the first sampled id to the last.
    pub decode_time: Duration,
    /// [prompt_tokens - reused_tokens, vocab] when asked for: the prefilled positions.
    pub prompt_logits: Option<Vec<f32>>,
}

impl GenerateStats {
    pub fn prefill_tok_s(&self) -> f64 {
        (self.prompt_tokens - self.reused_tokens) as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Decode rate over the tokens after the first (the first comes from prefill).
    pub fn decode_tok_s(&self) -> f64 {
        if self.generated < 2 {
            return 0.0;
        }
        (self.generated - 1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// A model with a KV cache of `ctx` positions, ready to generate.
pub struct Generator<'a> {
    gpu: &'a Gpu,
    model: &'a Model,
    forward: Forward,
    /// The ids whose KV the cache holds, at positions 0.. (see `prefix_cache`).
    kv_ids: Vec<u32>,
}

impl<'a> Generator<'a> {
    /// `max_tokens` is the most any one call to [`generate`](Self::generate) may produce.
    /// Every pipeline is created here (decode and prefill), so that the first prefill's time
    /// is prefill alone, not shader compilation.
    pub fn new(gpu: &'a Gpu, model: &'a Model, ctx: usize, max_tokens: usize) -> Result<Self> {
        Self::with_chunk(gpu, model, ctx, DEFAULT_CHUNK, max_tokens)
    }

    /// With prefill steps of at most `chunk` tokens (which also sizes the sliding rings).
    pub fn with_chunk(
        gpu: &'a Gpu,
        model: &'a Model,
        ctx: usize,
        chunk: usize,
        max_tokens: usize,
    ) -> Result<Self> {
        if max_tokens > ctx {
            return Err(Error::argument(
                "max_tokens",
                format!("{max_tokens} is more than the context of {ctx}"),
            ));
        }
        let mut forward = Forward::new(gpu, &model.weights, &model.config, ctx, chunk, max_tokens)?;
        forward.prepare_prefill(gpu, &model.weights)?;
        Ok(Generator {
            gpu,
            model,
            forward,
            kv_ids: Vec::new(),
        })
    }

    /// Prefill step length (after fitting the binding limit).
    pub fn chunk(&self) -> usize {
        self.forward.chunk
    }

    /// The ids whose KV the cache holds at positions 0.., from the last generation.
    pub fn kv_ids(&self) -> &[u32] {
        &self.kv_ids
    }

    /// How much of `prompt`'s KV the cache already holds exactly: the longest prefix shared
    /// with the last generation that `prefix_cache::reusable_prefix` allows (for
    /// [`generate_from`](Self::generate_from)).
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        crate::model::prefix_cache::reusable_prefix(
            &self.kv_ids,
            prompt,
            &self.model.config,
            self.forward.ctx,
            self.forward.chunk,
        )
    }

    pub fn ctx(&self) -> usize {
        self.forward.ctx
    }

    /// Checks that the prompt and the answer fit the context and this generator, before any
    /// work.
    pub fn check_fits(&self, prompt: &[u32], max_tokens: usize) -> Result<()> {
        let c = &self.model.config;
        fit::check_prompt(c, prompt)?;
        fit::answer_tokens(c, self.forward.ctx, prompt.len(), Some(max_tokens))?;
        if max_tokens > self.forward.max_samples() {
            return Err(Error::argument(
                "max_tokens",
                format!(
                    "{max_tokens} is more than the {} this generator was built for",
                    self.forward.max_samples()
                ),
            ));
        }
        Ok(())
    }

    /// Generates from `prompt` (token ids), calling `on_token` with each sampled id as it
    /// arrives; `on_token` returns false to stop early. Positions start at 0.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_token: impl FnMut(u32) -> Result<bool>,
    ) -> Result<GenerateStats> {
        self.generate_from(prompt, 0, opts, on_token)
    }

    /// As `generate`, with the KV of `prompt[..reuse]` taken as already in the cache at
    /// positions 0..reuse; only the rest is prefilled. The caller vouches that it is.
    pub fn generate_from(
        &mut self,
        prompt: &[u32],
        reuse: usize,
        opts: &GenerateOptions,
        on_token: impl FnMut(u32) -> Result<bool>,
    ) -> Result<GenerateStats> {
        self.check_fits(prompt, opts.max_tokens)?;
        if reuse >= prompt.len() {
            return Err(Error::argument(
                "reuse",
                format!(
                    "{reuse} cached positions leave nothing of the {}-token prompt to prefill",
                    prompt.len()
                ),
            ));
        }
        // Until this generation completes, nothing in the cache is vouched for.
        self.kv_ids.clear();
        let fresh = &prompt[reuse..];
        let gpu = self.gpu;
        let w = &self.model.weights;
        self.forward.set_sampling(gpu, w, opts.sampling)?;
        let mut stats = GenerateStats {
            prompt_tokens: prompt.len(),
            reused_tokens: reuse,
            ..Default::default()
        };
        if opts.max_tokens == 0 {
            let start = Instant::now();
            stats.prompt_logits = self
                .forward
                .prefill(gpu, w, fresh, reuse, opts.prompt_logits)?;
            gpu.wait("prefill")?;
            stats.prefill_time = start.elapsed();
            check_prompt_logits(stats.prompt_logits.as_deref(), self.model.config.vocab_size)?;
            self.kv_ids = prompt.to_vec();
            return Ok(stats);
        }

        let start = Instant::now();
        stats.prompt_logits = self
            .forward
            .prefill(gpu, w, fresh, reuse, opts.prompt_logits)?;
        check_prompt_logits(stats.prompt_logits.as_deref(), self.model.config.vocab_size)?;
        let generated = self.decode_loop(prompt.len(), opts, start, &mut stats, on_token)?;
        // Sample i was run as a decode step (its KV written) when step i + 1 was submitted,
        // that is for every sample but a last one at max_tokens.
        let written = generated.len().min(opts.max_tokens - 1);
        self.kv_ids = [prompt, &generated[..written]].concat();
        Ok(stats)
    }

    /// Samples up to `opts.max_tokens` ids after a prefilled prompt of `prompt_len` tokens,
    /// one step in flight, and returns them; the queue is idle when it returns.
    fn decode_loop(
        &mut self,
        prompt_len: usize,
        opts: &GenerateOptions,
        start: Instant,
        stats: &mut GenerateStats,
        mut on_token: impl FnMut(u32) -> Result<bool>,
    ) -> Result<Vec<u32>> {
        let gpu = self.gpu;
        let mut generated = Vec::new();
        let mut pending = self.forward.request_sample(gpu, 0)?;
        let mut first_at = None;
        for i in 0..opts.max_tokens {
            // Sample i is the token at position prompt_len + i.
            if i + 1 < opts.max_tokens {
                self.forward.decode_step(gpu, prompt_len + i, i + 1)?;
            }
            let id = pending.wait(gpu)?;
            if id as usize >= self.model.config.vocab_size {
                gpu.wait("decode")?;
                return Err(Error::NonFiniteLogits {
                    step: i,
                    position: prompt_len + i,
                });
            }
            let now = Instant::now();
            let first = *first_at.get_or_insert(now);
            stats.prefill_time = first - start;
            stats.generated = i + 1;
            stats.decode_time = now - first;
            generated.push(id);
            let go_on = on_token(id)?;
            if !go_on || opts.stop_ids.contains(&id) || i + 1 == opts.max_tokens {
                break;
            }
            pending = self.forward.request_sample(gpu, i + 1)?;
        }
        // Leave the queue idle (a step may still be in flight after a stop).
        gpu.wait("decode")?;
        Ok(generated)
    }
}

/// Logits read back for the prompt (`--dump-logits`) are on the CPU anyway: check them all.
fn check_prompt_logits(logits: Option<&[f32]>, vocab: usize) -> Result<()> {
    if let Some(l) = logits {
        if let Some(i) = l.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteLogits {
                step: 0,
                position: i / vocab.max(1),
            });
        }
    }
    Ok(())
}
