//! The forward pass on the GPU, in the order of gpt-oss's model.py: embedding, then per layer
//! attention (norm, qkv, RoPE + cache append, attention with sinks, o_proj + residual) and MoE
//! (norm, router, experts, residual), then the final norm, lm_head and the sampler.
//!
//! Decode (one token) is recorded once: its dispatches read the token id that the sampler left
//! on the GPU and the position from the step uniform, so a step is one write of the step
//! uniform and one submit; only the attention grid depends on the position. Prefill runs the
//! prompt in steps of up to `chunk` tokens through the batched kernels (tiled matmuls, tiled
//! attention over the cache, grouped MoE).

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::kernels::moe::{Experts, MoeShape, Routing};
use crate::kernels::*;
use crate::model::kv_cache::{self, LayerCache};
use crate::model::rope;
use crate::model::weights::{Bf16Matrix, ExpertWeights, Weights};

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

/// Tokens per prefill step unless the caller or the binding limit asks for fewer. Large steps
/// keep the grouped expert matmuls' row tiles full (gpt-oss-120b routes 2048 x 4 entries over
/// 128 experts: 64 a tile) and read the weights fewer times.
pub const DEFAULT_CHUNK: usize = 2048;

/// The largest prefill step, at most `wanted`, whose activation buffers each fit one binding.
pub fn fitting_chunk(c: &ModelConfig, wanted: usize, max_binding: u64) -> usize {
    let widest = [
        c.experts_per_token * c.intermediate_size.max(c.hidden_size),
        qkv_stride(c),
        c.num_experts,
    ]
    .into_iter()
    .max()
    .unwrap_or(1) as u64
        * 4;
    (max_binding / widest).clamp(1, wanted.max(1) as u64) as usize
}

/// Per-token activations of the decode path.
struct DecodeBuffers {
    x: GpuBuffer,
    qkv: GpuBuffer,
    attn: GpuBuffer,
    partials: GpuBuffer,
    router_logits: GpuBuffer,
    /// The MLP-normalised token, written by the router matvec for the expert kernels.
    xn: GpuBuffer,
    /// The router's choice: expert ids [k] then weights [k] (f32 bits).
    route: GpuBuffer,
    act: GpuBuffer,
    /// Weighted expert outputs [k, hidden], summed into x by moe_combine_f32.
    moe_out: GpuBuffer,
    logits: GpuBuffer,
    /// (max logit, id) per lm_head workgroup, for the greedy sampler.
    argmax: GpuBuffer,
}

/// Activations of one prefill step, [chunk, ...].
struct PrefillBuffers {
    ids: GpuBuffer,
    x: GpuBuffer,
    xn: GpuBuffer,
    qkv: GpuBuffer,
    attn: GpuBuffer,
    router_logits: GpuBuffer,
    act: GpuBuffer,
    y: GpuBuffer,
    routing: Routing,
}

/// One decode dispatch; attention's grid is set per step.
struct DecodeOp {
    dispatch: Dispatch,
    attention: Option<attention_decode_f32::Grid>,
}

pub struct Forward {
    pub config: ModelConfig,
    /// Context length: positions 0..ctx.
    pub ctx: usize,
    /// Largest prefill step.
    pub chunk: usize,
    step: StepBuffer,
    rope: GpuBuffer,
    kv: Vec<LayerCache>,
    dec: DecodeBuffers,
    pre: PrefillBuffers,
    /// The sampler's output: tokens[0] feeds the next embedding.
    pub tokens: GpuBuffer,
    /// Every sampled id, by sample index, for read-back.
    pub history: GpuBuffer,
    pub max_samples: usize,
    decode_ops: Vec<DecodeOp>,
    /// lm_head (with the final norm) over `dec.x`, then the sampler.
    head_ops: Vec<Dispatch>,
    sampling: SamplingParams,
    /// Read-back buffers for sampled ids, used in turn.
    staging: Vec<wgpu::Buffer>,
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
        match self.rx.recv() {
            Ok(Ok(())) => {}
            _ => {
                return Err(Error::Map {
                    label: "sample read-back".into(),
                    message: "mapping failed".into(),
                })
            }
        }
        let id = {
            let view = self
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Map {
                    label: "sample read-back".into(),
                    message: e.to_string(),
                })?;
            u32::from_le_bytes([view[0], view[1], view[2], view[3]])
        };
        self.staging.unmap();
        Ok(id)
    }
}

/// A profile entry's name: the kernel, and for matvecs and matmuls which matrix (the layer
/// index and part number dropped, so that layers add up).
fn profile_name(d: &Dispatch) -> String {
    let kernel = d.pipeline.label.split("::").next().unwrap_or("");
    if !kernel.starts_with("matvec") && !kernel.starts_with("matmul") {
        return kernel.to_string();
    }
    let t = d.target.as_str();
    // "model.layers.7.self_attn.qkv_proj.weight.part1" -> "self_attn.qkv_proj"
    let t = match t.find("layers.") {
        Some(i) => {
            let rest = &t[i + "layers.".len()..];
            rest.split_once('.').map(|(_, r)| r).unwrap_or(rest)
        }
        None => t,
    };
    let t = t
        .split(".part")
        .next()
        .unwrap_or(t)
        .trim_end_matches(".weight");
    let t = t.rsplit('.').next().unwrap_or(t);
    format!("{kernel} {t}")
}

/// Runs `ops` each in its own timed pass (in batches that fit a query set) and returns
/// (profile name, GPU nanoseconds) per dispatch; None without timestamp queries.
fn timed(gpu: &Gpu, ops: &[(&Dispatch, [u32; 3])]) -> Result<Option<Vec<(String, f64)>>> {
    const BATCH: usize = 1024;
    let Some(profiler) = crate::gpu::Profiler::new(gpu, BATCH as u32) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(ops.len());
    for batch in ops.chunks(BATCH) {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        for (i, (d, [x, y, z])) in batch.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.pipeline.label),
                timestamp_writes: Some(profiler.pass(i as u32)),
            });
            pass.set_pipeline(&d.pipeline.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(*x, *y, *z);
        }
        profiler.resolve(&mut encoder, batch.len() as u32);
        gpu.queue.submit([encoder.finish()]);
        let times = profiler.read(gpu, batch.len() as u32)?;
        out.extend(batch.iter().map(|(d, _)| profile_name(d)).zip(times));
    }
    Ok(Some(out))
}

/// Workgroups of the lm_head matvec over all its parts (one argmax entry each).
fn lm_head_workgroups(gpu: &Gpu, w: &Weights) -> u32 {
    w.lm_head
        .parts
        .iter()
        .map(|p| matvec_f32_bf16w::workgroups(gpu, p.rows as u32))
        .sum()
}

/// What a decode matvec over all row-parts of a matrix reads and writes (see
/// matvec_f32_bf16w::Matvec; the parts supply the weights and rows).
#[derive(Clone, Copy)]
struct MatvecIo<'a> {
    x: &'a GpuBuffer,
    norm: Option<(&'a GpuBuffer, f32)>,
    bias: Option<&'a GpuBuffer>,
    residual: bool,
    out: &'a GpuBuffer,
    /// The normalised input (written by the first part only).
    normed_out: Option<&'a GpuBuffer>,
    /// Per-workgroup maxima, indexed across parts.
    argmax: Option<&'a GpuBuffer>,
}

/// What a prefill matmul over all row-parts of a matrix reads and writes (see
/// matmul_f32_bf16w::Matmul).
#[derive(Clone, Copy)]
struct MatmulIo<'a> {
    n_tokens: usize,
    x: &'a GpuBuffer,
    bias: Option<&'a GpuBuffer>,
    residual: bool,
    out: &'a GpuBuffer,
}

fn qkv_stride(c: &ModelConfig) -> usize {
    c.q_dim() + 2 * c.kv_dim()
}

impl Forward {
    /// Allocates the KV cache and activations for `ctx` positions and builds the decode
    /// dispatches. `max_samples` bounds how many tokens one generation may sample.
    pub fn new(
        gpu: &Gpu,
        weights: &Weights,
        config: &ModelConfig,
        ctx: usize,
        chunk: usize,
        max_samples: usize,
    ) -> Result<Self> {
        let c = config.clone();
        if ctx == 0 || ctx > c.max_position_embeddings {
            return Err(Error::argument(
                "--ctx",
                format!("{ctx} is outside 1..={}", c.max_position_embeddings),
            ));
        }
        // The RoPE table is built on the CPU before any buffer: check that it fits one
        // binding first, or a huge --ctx aborts on the allocation instead of failing.
        let limit = gpu.max_binding().min(gpu.max_buffer());
        let rope_bytes = (ctx as u64).checked_mul(c.head_dim as u64 * 4);
        if ctx > u32::MAX as usize || rope_bytes.is_none_or(|b| b > limit) {
            return Err(Error::argument(
                "--ctx",
                format!(
                    "{ctx} positions need a RoPE table of {} bytes, more than this adapter's \
                     largest binding ({limit} bytes)",
                    rope_bytes.map_or_else(|| "more than 2^64".into(), |b| b.to_string())
                ),
            ));
        }
        let chunk = fitting_chunk(&c, chunk, gpu.max_binding()).clamp(1, ctx);
        // A layer's K (or V) is one binding of its capacity (ctx positions on full layers):
        // say so in terms of --ctx, not of an internal buffer's label.
        let per_position = c.kv_dim() as u64 * gpu.precision().kv.element_bytes();
        let positions = (0..c.num_hidden_layers)
            .map(|l| kv_cache::capacity(&c, l, ctx, chunk))
            .max()
            .unwrap_or(0) as u64;
        if positions.saturating_mul(per_position) > limit {
            return Err(Error::argument(
                "--ctx",
                format!(
                    "a context of {ctx} needs {} bytes per layer for its KV cache, over this \
                     adapter's largest binding ({limit} bytes); at most {} positions fit",
                    positions.saturating_mul(per_position),
                    limit / per_position.max(1)
                ),
            ));
        }
        let (h, e, k) = (c.hidden_size, c.num_experts, c.experts_per_token);
        let f = |n: usize| n as u64 * 4;
        let table: Vec<f32> = rope::table(&c, ctx).into_iter().flatten().collect();
        let rope = gpu.upload_pod("rope.table", &table)?;
        let kv = kv_cache::allocate(gpu, &c, ctx, chunk)?;
        let dec = DecodeBuffers {
            x: gpu.storage("decode.x", f(h))?,
            qkv: gpu.storage("decode.qkv", f(qkv_stride(&c)))?,
            attn: gpu.storage("decode.attn", f(c.q_dim()))?,
            partials: gpu.storage(
                "decode.attn_partials",
                4 * attention_decode_f32::partials_len(
                    c.num_attention_heads as u32,
                    c.head_dim as u32,
                    ctx as u32,
                ),
            )?,
            router_logits: gpu.storage("decode.router_logits", f(e))?,
            xn: gpu.storage("decode.xn", f(h))?,
            route: gpu.storage("decode.route", f(2 * k))?,
            act: gpu.storage("decode.act", f(k * c.intermediate_size))?,
            moe_out: gpu.storage("decode.moe_out", f(k * h))?,
            logits: gpu.storage("decode.logits", f(c.vocab_size))?,
            argmax: gpu.storage("decode.argmax", 8 * lm_head_workgroups(gpu, weights) as u64)?,
        };
        let pre = PrefillBuffers {
            ids: gpu.storage("prefill.ids", f(chunk))?,
            x: gpu.storage("prefill.x", f(chunk * h))?,
            xn: gpu.storage("prefill.xn", f(chunk * h))?,
            qkv: gpu.storage("prefill.qkv", f(chunk * qkv_stride(&c)))?,
            attn: gpu.storage("prefill.attn", f(chunk * c.q_dim()))?,
            router_logits: gpu.storage("prefill.router_logits", f(chunk * e))?,
            act: gpu.storage("prefill.act", f(chunk * k * c.intermediate_size))?,
            y: gpu.storage("prefill.moe_out", f(chunk * k * h))?,
            routing: Routing::new(gpu, chunk as u32, k as u32, e as u32)?,
        };
        let mut fwd = Forward {
            step: StepBuffer::new(gpu, "step")?,
            tokens: gpu.storage("sampler.tokens", 4)?,
            history: gpu.storage("sampler.history", f(max_samples.max(1)))?,
            max_samples: max_samples.max(1),
            config: c,
            ctx,
            chunk,
            rope,
            kv,
            dec,
            pre,
            decode_ops: Vec::new(),
            head_ops: Vec::new(),
            sampling: SamplingParams::default(),
            staging: (0..2)
                .map(|i| {
                    gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(&format!("sample read-back {i}")),
                        size: 4,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .collect(),
        };
        fwd.decode_ops = fwd.build_decode(gpu, weights)?;
        fwd.head_ops = fwd.build_head(gpu, weights)?;
        Ok(fwd)
    }

    pub fn set_sampling(&mut self, gpu: &Gpu, weights: &Weights, s: SamplingParams) -> Result<()> {
        if s != self.sampling {
            self.sampling = s;
            self.head_ops = self.build_head(gpu, weights)?;
        }
        Ok(())
    }

    fn matvec_parts(&self, gpu: &Gpu, m: &Bf16Matrix, io: MatvecIo<'_>) -> Result<Vec<Dispatch>> {
        let mut argmax_offset = 0;
        m.parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let d = matvec_f32_bf16w::Matvec {
                    w: &p.buffer,
                    rows: p.rows as u32,
                    k: m.cols as u32,
                    out_offset: p.first_row as u32,
                    x: io.x,
                    norm: io.norm,
                    bias: io.bias,
                    residual: io.residual,
                    out: io.out,
                    normed_out: if i == 0 { io.normed_out } else { None },
                    argmax: io.argmax.map(|a| (a, argmax_offset)),
                }
                .dispatch(gpu);
                argmax_offset += matvec_f32_bf16w::workgroups(gpu, p.rows as u32);
                d
            })
            .collect()
    }

    fn matmul_parts(&self, gpu: &Gpu, m: &Bf16Matrix, io: MatmulIo<'_>) -> Result<Vec<Dispatch>> {
        m.parts
            .iter()
            .map(|p| {
                matmul_f32_bf16w::Matmul {
                    w: &p.buffer,
                    rows: p.rows as u32,
                    k: m.cols as u32,
                    n_tokens: io.n_tokens as u32,
                    x: io.x,
                    bias: io.bias,
                    residual: io.residual,
                    out: io.out,
                    out_offset: p.first_row as u32,
                    out_stride: m.rows as u32,
                }
                .dispatch(gpu)
            })
            .collect()
    }

    /// Each expert part of a layer's expert tensor, as the MoE kernels bind it.
    fn expert_parts(w: &ExpertWeights) -> Vec<Experts<'_>> {
        w.blocks
            .parts
            .iter()
            .zip(&w.scales.parts)
            .zip(&w.bias.parts)
            .map(|((b, s), bias)| Experts {
                blocks: &b.buffer,
                scales: &s.buffer,
                bias: &bias.buffer,
                e0: b.first_expert as u32,
                n_part: b.n_experts as u32,
            })
            .collect()
    }

    /// Layer `l`'s attention in a step whose q, k and v are in `qkv`.
    fn attention_step<'a>(&'a self, l: usize, qkv: &'a GpuBuffer) -> AttentionStep<'a> {
        let c = &self.config;
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

    fn moe_shape(&self) -> MoeShape {
        let c = &self.config;
        MoeShape {
            hidden: c.hidden_size as u32,
            inter: c.intermediate_size as u32,
            n_experts: c.num_experts as u32,
            k: c.experts_per_token as u32,
        }
    }

    fn build_decode(&self, gpu: &Gpu, w: &Weights) -> Result<Vec<DecodeOp>> {
        let c = &self.config;
        let d = &self.dec;
        let eps = c.rms_norm_eps;
        let moe = self.moe_shape();
        let mut ops: Vec<DecodeOp> = Vec::new();
        let push = |ops: &mut Vec<DecodeOp>, v: Vec<Dispatch>| {
            ops.extend(v.into_iter().map(|dispatch| DecodeOp {
                dispatch,
                attention: None,
            }))
        };
        push(
            &mut ops,
            w.embedding
                .parts
                .iter()
                .map(|p| {
                    embed_f32_bf16w::Embed {
                        table: &p.buffer,
                        row0: p.first_row as u32,
                        rows: p.rows as u32,
                        hidden: c.hidden_size as u32,
                        ids: &self.tokens,
                        n_tokens: 1,
                        out: &d.x,
                    }
                    .dispatch(gpu)
                })
                .collect::<Result<_>>()?,
        );
        for (l, lw) in w.layers.iter().enumerate() {
            push(
                &mut ops,
                self.matvec_parts(
                    gpu,
                    &lw.qkv,
                    MatvecIo {
                        x: &d.x,
                        norm: Some((&lw.attn_norm.buffer, eps)),
                        bias: Some(&lw.qkv_bias.buffer),
                        residual: false,
                        out: &d.qkv,
                        normed_out: None,
                        argmax: None,
                    },
                )?,
            );
            let kv = &self.kv[l];
            let attn = attention_decode_f32::AttentionDecode {
                attention: self.attention_step(l, &d.qkv),
                partials: &d.partials,
                rope: &self.rope,
            };
            ops.push(DecodeOp {
                dispatch: attn.dispatch(gpu)?,
                attention: Some(attn.grid_shape()),
            });
            push(
                &mut ops,
                vec![attention_combine_f32::AttentionCombine {
                    n_heads: c.num_attention_heads as u32,
                    head_dim: c.head_dim as u32,
                    window: kv.window,
                    step: &self.step,
                    partials: &d.partials,
                    sinks: &lw.sinks.buffer,
                    out: &d.attn,
                }
                .dispatch(gpu)?],
            );
            push(
                &mut ops,
                self.matvec_parts(
                    gpu,
                    &lw.o,
                    MatvecIo {
                        x: &d.attn,
                        norm: None,
                        bias: Some(&lw.o_bias.buffer),
                        residual: true,
                        out: &d.x,
                        normed_out: None,
                        argmax: None,
                    },
                )?,
            );
            push(
                &mut ops,
                self.matvec_parts(
                    gpu,
                    &lw.router,
                    MatvecIo {
                        x: &d.x,
                        norm: Some((&lw.mlp_norm.buffer, eps)),
                        bias: Some(&lw.router_bias.buffer),
                        residual: false,
                        out: &d.router_logits,
                        normed_out: Some(&d.xn),
                        argmax: None,
                    },
                )?,
            );
            push(
                &mut ops,
                vec![router_topk_f32::RouterTopk {
                    n_experts: moe.n_experts,
                    k: moe.k,
                    logits: &d.router_logits,
                    route: &d.route,
                }
                .dispatch(gpu)?],
            );
            let mut experts = Vec::new();
            for part in Self::expert_parts(&lw.gate_up) {
                experts.push(
                    moe_gate_up_f32_mf4w::MoeGateUp {
                        shape: moe,
                        limit: c.swiglu_limit,
                        route: &d.route,
                        xn: &d.xn,
                        experts: &part,
                        act: &d.act,
                    }
                    .dispatch(gpu)?,
                );
            }
            for part in Self::expert_parts(&lw.down) {
                experts.push(
                    moe_down_f32_mf4w::MoeDown {
                        shape: moe,
                        route: &d.route,
                        act: &d.act,
                        experts: &part,
                        y: &d.moe_out,
                    }
                    .dispatch(gpu)?,
                );
            }
            experts.push(
                moe_combine_f32::MoeCombine {
                    hidden: moe.hidden,
                    k: moe.k,
                    y: &d.moe_out,
                    x: &d.x,
                }
                .dispatch(gpu)?,
            );
            push(&mut ops, experts);
        }
        Ok(ops)
    }

    fn build_head(&self, gpu: &Gpu, w: &Weights) -> Result<Vec<Dispatch>> {
        let c = &self.config;
        let mut ops = self.matvec_parts(
            gpu,
            &w.lm_head,
            MatvecIo {
                x: &self.dec.x,
                norm: Some((&w.final_norm.buffer, c.rms_norm_eps)),
                bias: None,
                residual: false,
                out: &self.dec.logits,
                normed_out: None,
                argmax: Some(&self.dec.argmax),
            },
        )?;
        let s = self.sampling;
        ops.push(
            sample_f32::Sample {
                vocab: c.vocab_size as u32,
                top_k: s.top_k,
                temperature: s.temperature,
                top_p: s.top_p,
                seed: s.seed,
                step: &self.step,
                logits: &self.dec.logits,
                tokens: &self.tokens,
                history: &self.history,
                partials: Some((&self.dec.argmax, lm_head_workgroups(gpu, w))),
            }
            .dispatch(gpu)?,
        );
        Ok(ops)
    }

    /// Dispatches of one prefill step of `n` tokens (ids in `pre.ids`, position in the step uniform),
    /// leaving the residual stream in `pre.x`.
    fn build_prefill(&self, gpu: &Gpu, w: &Weights, n: usize) -> Result<Vec<Dispatch>> {
        let c = &self.config;
        let p = &self.pre;
        let h = c.hidden_size;
        let moe = self.moe_shape();
        let eps = c.rms_norm_eps;
        let rmsnorm = |gain: &GpuBuffer| {
            rmsnorm_f32::RmsNorm {
                x: &p.x,
                gain,
                out: &p.xn,
                n_tokens: n as u32,
                hidden: h as u32,
                eps,
            }
            .dispatch(gpu)
        };
        let mut ops = Vec::new();
        for part in &w.embedding.parts {
            ops.push(
                embed_f32_bf16w::Embed {
                    table: &part.buffer,
                    row0: part.first_row as u32,
                    rows: part.rows as u32,
                    hidden: h as u32,
                    ids: &p.ids,
                    n_tokens: n as u32,
                    out: &p.x,
                }
                .dispatch(gpu)?,
            );
        }
        for (l, lw) in w.layers.iter().enumerate() {
            ops.push(rmsnorm(&lw.attn_norm.buffer)?);
            ops.extend(self.matmul_parts(
                gpu,
                &lw.qkv,
                MatmulIo {
                    n_tokens: n,
                    x: &p.xn,
                    bias: Some(&lw.qkv_bias.buffer),
                    residual: false,
                    out: &p.qkv,
                },
            )?);
            let attention = self.attention_step(l, &p.qkv);
            let rope = rope_kv_append_f32::RopeKvAppend {
                attention,
                max_tokens: self.chunk as u32,
                rope: &self.rope,
            };
            let mut rope_d = rope.dispatch(gpu)?;
            rope_d.workgroups = rope.workgroups(gpu, n as u32);
            ops.push(rope_d);
            let attn = attention_prefill_f32::AttentionPrefill {
                attention,
                max_tokens: self.chunk as u32,
                sinks: &lw.sinks.buffer,
                out: &p.attn,
            };
            let mut attn_d = attn.dispatch(gpu)?;
            attn_d.workgroups = attn.grid(n as u32);
            ops.push(attn_d);
            ops.extend(self.matmul_parts(
                gpu,
                &lw.o,
                MatmulIo {
                    n_tokens: n,
                    x: &p.attn,
                    bias: Some(&lw.o_bias.buffer),
                    residual: true,
                    out: &p.x,
                },
            )?);
            ops.push(rmsnorm(&lw.mlp_norm.buffer)?);
            ops.extend(self.matmul_parts(
                gpu,
                &lw.router,
                MatmulIo {
                    n_tokens: n,
                    x: &p.xn,
                    bias: Some(&lw.router_bias.buffer),
                    residual: false,
                    out: &p.router_logits,
                },
            )?);
            ops.push(
                moe_route_prefill::MoeRoutePrefill {
                    shape: moe,
                    n_tokens: n as u32,
                    logits: &p.router_logits,
                    routing: &p.routing,
                }
                .dispatch(gpu)?,
            );
            for part in Self::expert_parts(&lw.gate_up) {
                ops.push(
                    moe_gate_up_prefill_f32_mf4w::MoeGateUpPrefill {
                        shape: moe,
                        limit: c.swiglu_limit,
                        max_tokens: n as u32,
                        xn: &p.xn,
                        routing: &p.routing,
                        experts: &part,
                        act: &p.act,
                    }
                    .dispatch(gpu)?,
                );
            }
            for part in Self::expert_parts(&lw.down) {
                ops.push(
                    moe_down_prefill_f32_mf4w::MoeDownPrefill {
                        shape: moe,
                        max_tokens: n as u32,
                        act: &p.act,
                        routing: &p.routing,
                        experts: &part,
                        y: &p.y,
                    }
                    .dispatch(gpu)?,
                );
            }
            ops.push(
                moe_combine_prefill_f32::MoeCombinePrefill {
                    shape: moe,
                    n_tokens: n as u32,
                    y: &p.y,
                    routing: &p.routing,
                    x: &p.x,
                }
                .dispatch(gpu)?,
            );
        }
        Ok(ops)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(Error::argument(
                "prompt",
                format!(
                    "token id {bad} is outside the vocabulary (size {})",
                    self.config.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// Runs the prompt `ids` at positions pos0.. through the model in prefill steps, then the
    /// head on the last position and the sampler (sample index 0). With `logits_out`, also
    /// returns the logits at every prompt position, [ids.len(), vocab].
    pub fn prefill(
        &mut self,
        gpu: &Gpu,
        w: &Weights,
        ids: &[u32],
        pos0: usize,
        want_logits: bool,
    ) -> Result<Option<Vec<f32>>> {
        self.check_ids(ids)?;
        if ids.is_empty() {
            return Err(Error::argument("prompt", "the prompt has no tokens"));
        }
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
        let c = self.config.clone();
        let h = c.hidden_size;
        // Logits of a whole step must fit one binding: smaller steps when they are wanted.
        let step_tokens = if want_logits {
            let per = (c.vocab_size * 4) as u64;
            (gpu.max_binding() / per).clamp(1, self.chunk as u64) as usize
        } else {
            self.chunk
        };
        let logits_buf = if want_logits {
            Some(gpu.storage("prefill.logits", (step_tokens * c.vocab_size * 4) as u64)?)
        } else {
            None
        };
        let mut all_logits = want_logits.then(Vec::new);
        let mut t0 = 0;
        while t0 < ids.len() {
            let n = step_tokens.min(ids.len() - t0);
            gpu.write(&self.pre.ids, 0, bytemuck::cast_slice(&ids[t0..t0 + n]));
            self.step.set_at(gpu, pos0 + t0, n, 0);
            let mut ops = self.build_prefill(gpu, w, n)?;
            if let Some(lb) = &logits_buf {
                ops.push(
                    rmsnorm_f32::RmsNorm {
                        x: &self.pre.x,
                        gain: &w.final_norm.buffer,
                        out: &self.pre.xn,
                        n_tokens: n as u32,
                        hidden: h as u32,
                        eps: c.rms_norm_eps,
                    }
                    .dispatch(gpu)?,
                );
                let io = MatmulIo {
                    n_tokens: n,
                    x: &self.pre.xn,
                    bias: None,
                    residual: false,
                    out: lb,
                };
                ops.extend(self.matmul_parts(gpu, &w.lm_head, io)?);
            }
            let mut encoder = gpu.encode_pass("prefill", |pass| {
                for op in &ops {
                    op.record(pass);
                }
            });
            let last = t0 + n == ids.len();
            if last {
                // The last position's residual stream feeds the decode-side head and sampler.
                encoder.copy_buffer_to_buffer(
                    &self.pre.x.buffer,
                    ((n - 1) * h * 4) as u64,
                    &self.dec.x.buffer,
                    0,
                    (h * 4) as u64,
                );
            }
            gpu.queue.submit([encoder.finish()]);
            if let (Some(lb), Some(out)) = (&logits_buf, all_logits.as_mut()) {
                let bytes = gpu.read_range(lb, 0, (n * c.vocab_size * 4) as u64)?;
                out.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes));
            }
            gpu.check("prefill")?;
            t0 += n;
        }
        let last_pos = pos0 + ids.len() - 1;
        self.step.set_at(gpu, last_pos, 1, 0);
        let encoder = gpu.encode_pass("prefill head", |pass| {
            for op in &self.head_ops {
                op.record(pass);
            }
        });
        gpu.queue.submit([encoder.finish()]);
        Ok(all_logits)
    }

    /// Creates the pipelines of a full prefill step now (they are cached), so that shader
    /// compilation is not counted as prefill time.
    pub fn prepare_prefill(&self, gpu: &Gpu, w: &Weights) -> Result<()> {
        self.build_prefill(gpu, w, self.chunk)?;
        Ok(())
    }

    /// Starts reading sample `index` back: a copy into a staging buffer, submitted now (so it
    /// lands behind the step that produced the sample) and mapped asynchronously. The GPU can
    /// run the next step while the CPU waits for this one.
    pub fn request_sample(&self, gpu: &Gpu, index: usize) -> Result<PendingSample> {
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

    /// Runs one decode step (token tokens[0] at `pos`) with every dispatch in its own timed
    /// pass, and returns (kernel name, GPU nanoseconds) per dispatch, in order. None without
    /// timestamp queries.
    pub fn profile_decode_step(&self, gpu: &Gpu, pos: usize) -> Result<Option<Vec<(String, f64)>>> {
        self.step.set_at(gpu, pos, 1, 0);
        let ops: Vec<(&Dispatch, [u32; 3])> = self
            .decode_ops
            .iter()
            .map(|op| {
                let grid = match &op.attention {
                    Some(grid) => grid.at(pos as u32),
                    None => op.dispatch.workgroups,
                };
                (&op.dispatch, grid)
            })
            .chain(self.head_ops.iter().map(|d| (d, d.workgroups)))
            .collect();
        timed(gpu, &ops)
    }

    /// Runs one prefill step of `ids` (at most `chunk` tokens) at position 0 with every dispatch
    /// in its own timed pass; returns (kernel name, GPU nanoseconds) per dispatch.
    pub fn profile_prefill_step(
        &self,
        gpu: &Gpu,
        w: &Weights,
        ids: &[u32],
    ) -> Result<Option<Vec<(String, f64)>>> {
        self.check_ids(ids)?;
        let n = ids.len().min(self.chunk);
        gpu.write(&self.pre.ids, 0, bytemuck::cast_slice(&ids[..n]));
        self.step.set_at(gpu, 0, n, 0);
        let ops = self.build_prefill(gpu, w, n)?;
        let ops: Vec<(&Dispatch, [u32; 3])> = ops.iter().map(|d| (d, d.workgroups)).collect();
        timed(gpu, &ops)
    }

    /// The logits [vocab] of the last head run: the prompt's last position after
    /// [`prefill`](Self::prefill), the step's position after [`decode_step`](Self::decode_step).
    /// Waits for the GPU; for tests and debugging, not the generation loop.
    pub fn logits(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read_f32(&self.dec.logits)
    }

    /// Dispatches in one decode step (for the design target of at most 8 per layer).
    pub fn decode_dispatches(&self) -> usize {
        self.decode_ops.len() + self.head_ops.len()
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
                "--max-tokens",
                format!("position {pos} is past the context of {}", self.ctx),
            ));
        }
        if sample_index >= self.max_samples {
            return Err(Error::argument(
                "--max-tokens",
                format!(
                    "sample {sample_index} is past the {} planned",
                    self.max_samples
                ),
            ));
        }
        self.step.set_at(gpu, pos, 1, sample_index);
        let encoder = gpu.encode_pass("decode", |pass| {
            for op in &self.decode_ops {
                pass.set_pipeline(&op.dispatch.pipeline.pipeline);
                pass.set_bind_group(0, &op.dispatch.bind_group, &[]);
                let [x, y, z] = match &op.attention {
                    Some(grid) => grid.at(pos as u32),
                    None => op.dispatch.workgroups,
                };
                pass.dispatch_workgroups(x, y, z);
            }
            for op in &self.head_ops {
                op.record(pass);
            }
        });
        Ok(gpu.queue.submit([encoder.finish()]))
    }
}
