//! Prefill: the prompt in steps of up to `chunk` tokens through the batched kernels (tiled
//! matmuls, tiled attention over the cache, grouped MoE).
//!
//! A step's kernels take its token count in their parameters, so each step size has a plan of
//! its own, built on first use and cached (a prompt needs at most two: full steps and the
//! rest). Positions come from the step uniform, so a cached plan serves any position. Per
//! layer it follows gpt-oss's model.py
//! (https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py): `x = attn(x);
//! x = mlp(x)`.

use std::collections::HashMap;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::kernels::moe::{MoeBuffers, Routing};
use crate::kernels::*;
use crate::model::activations::activations;
use crate::model::forward::{moe_shape, qkv_stride, State};
use crate::model::matrix::{embed, part_rows, whole, Product};
use crate::model::plan::Plan;
use crate::model::weights::{Bf16Matrix, ExpertWeights, LayerWeights, Weights};

/// Tokens per prefill step unless the caller or the binding limit asks for fewer. Large steps
/// keep the grouped expert matmuls' row tiles full (gpt-oss-120b routes 2048 x 4 entries over
/// 128 experts: 64 a tile) and read the weights fewer times.
pub const DEFAULT_CHUNK: usize = 2048;

/// Plans kept at once: full steps and the last, partial one of a prompt, plus a few sizes a
/// server's turns bring; beyond this the cache starts again (a rebuild is what every step
/// cost before plans were cached: bind groups and uniforms, no shader compilation).
const MAX_PLANS: usize = 8;

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

activations! {
    /// Activations of one prefill step, [chunk, ...]: sizes in bytes (`Buffers<u64>`) or
    /// buffers.
    pub struct Buffers {
        ids: "ids",
        /// The residual stream [chunk, hidden].
        x: "x",
        /// The normalised residual stream, input of qkv and of the router and experts.
        xn: "xn",
        qkv: "qkv",
        attn: "attn",
        router_logits: "router_logits",
        act: "act",
        /// Expert outputs [chunk * k, hidden], combined into x by moe_combine_prefill_f32.
        y: "moe_out",
        /// Per token, the power of two the cooperative-matrix kernels divide xn by (u32).
        shift: "xn_shift",
        /// The same for attn, the input of o_proj.
        attn_shift: "attn_shift",
        /// Where the device has cooperative matrices: the input of the next f16 matmuls (xn
        /// or attn) as two f16 parts after each token's shift (row_shift_f32), 4 bytes a value;
        /// elsewhere a placeholder word.
        x16: "x16",
    }
}

impl Buffers<u64> {
    /// Bytes of each buffer for steps of up to `chunk` tokens, on a device with (`coop`) or
    /// without cooperative matrices.
    pub fn sizes(c: &ModelConfig, chunk: usize, coop: bool) -> Self {
        let f = |n: usize| (chunk * n) as u64 * 4;
        let (h, k) = (c.hidden_size, c.experts_per_token);
        Buffers {
            ids: f(1),
            x: f(h),
            xn: f(h),
            qkv: f(qkv_stride(c)),
            attn: f(c.q_dim()),
            router_logits: f(c.num_experts),
            act: f(k * c.intermediate_size),
            y: f(k * h),
            shift: f(1),
            attn_shift: f(1),
            x16: if coop { f(h.max(c.q_dim())) } else { 4 },
        }
    }
}

/// One layer's weight-row scales for the cooperative-matrix kernels, one buffer per stored
/// part of each matrix: for each bf16 matrix, the f16 shift of every row
/// (weight_shift_bf16w); for each MXFP4 expert matrix, every row's largest block scale
/// (row_exp_mf4w). Empty where the device has no cooperative matrices.
struct LayerShifts {
    qkv: Vec<GpuBuffer>,
    o: Vec<GpuBuffer>,
    gate_up: Vec<GpuBuffer>,
    down: Vec<GpuBuffer>,
}

/// Bytes of every layer's weight-row scales where the device computes on cooperative
/// matrices (`coop`; none elsewhere): an i32 per row of qkv and o, a byte per
/// expert row of gate_up and down (about 7.4 MB for 20b, 42 MB for 120b).
pub fn weight_shift_bytes(c: &ModelConfig, coop: bool) -> u64 {
    if !coop {
        return 0;
    }
    let bf16_rows = (qkv_stride(c) + c.hidden_size) as u64;
    let expert_rows = (c.num_experts * (2 * c.intermediate_size + c.hidden_size)) as u64;
    c.num_hidden_layers as u64 * (bf16_rows * 4 + row_exp_mf4w::bytes(expert_rows))
}

/// The weight-row scales of every layer, computed (where the device has cooperative
/// matrices) in one submission: the weights do not change, so no step or workgroup computes
/// them again.
fn weight_shifts(gpu: &Gpu, w: &Weights) -> Result<Vec<LayerShifts>> {
    let coop = gpu.precision().coop;
    let mut dispatches = Vec::new();
    let shifts = |m: &Bf16Matrix, dispatches: &mut Vec<Dispatch>| -> Result<Vec<GpuBuffer>> {
        (m.parts.iter().filter(|_| coop))
            .map(|p| {
                let label = format!("{}.w_shift", p.buffer.label);
                let w_shift = gpu.storage(&label, p.rows as u64 * 4)?;
                let d = weight_shift_bf16w::WeightShift {
                    w: part_rows(p, m.cols),
                    w_shift: &w_shift,
                };
                dispatches.push(d.dispatch(gpu)?);
                Ok(w_shift)
            })
            .collect()
    };
    let row_exps = |m: &ExpertWeights, dispatches: &mut Vec<Dispatch>| -> Result<Vec<GpuBuffer>> {
        (m.scales.parts.iter().filter(|_| coop))
            .map(|p| {
                let rows = (p.n_experts * m.rows) as u32;
                let label = format!("{}.row_exp", p.buffer.label);
                let row_exp = gpu.storage(&label, row_exp_mf4w::bytes(rows as u64))?;
                let d = row_exp_mf4w::RowExp {
                    scales: &p.buffer,
                    rows,
                    cols: m.cols as u32,
                    row_exp: &row_exp,
                };
                dispatches.push(d.dispatch(gpu)?);
                Ok(row_exp)
            })
            .collect()
    };
    let layers = (w.layers.iter())
        .map(|lw| {
            Ok(LayerShifts {
                qkv: shifts(&lw.qkv, &mut dispatches)?,
                o: shifts(&lw.o, &mut dispatches)?,
                gate_up: row_exps(&lw.gate_up, &mut dispatches)?,
                down: row_exps(&lw.down, &mut dispatches)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if !dispatches.is_empty() {
        gpu.run("weight shifts", &dispatches.iter().collect::<Vec<_>>())?;
    }
    Ok(layers)
}

/// The prefill path: its buffers and a plan per step size.
pub struct Prefill {
    pub chunk: usize,
    pub buf: Buffers<GpuBuffer>,
    routing: Routing,
    shifts: Vec<LayerShifts>,
    plans: HashMap<usize, Plan>,
}

impl Prefill {
    pub fn new(gpu: &Gpu, c: &ModelConfig, w: &Weights, chunk: usize) -> Result<Self> {
        let (k, e) = (c.experts_per_token as u32, c.num_experts as u32);
        Ok(Prefill {
            chunk,
            buf: Buffers::sizes(c, chunk, gpu.precision().coop).allocate(gpu, "prefill")?,
            routing: Routing::new(gpu, chunk as u32, k, e)?,
            shifts: weight_shifts(gpu, w)?,
            plans: HashMap::new(),
        })
    }

    /// The plan of a step of `n` tokens (ids in `buf.ids`, position in the step uniform),
    /// leaving the residual stream in `buf.x`.
    pub fn plan(
        &mut self,
        gpu: &Gpu,
        c: &ModelConfig,
        state: &State,
        w: &Weights,
        n: usize,
    ) -> Result<&Plan> {
        if !self.plans.contains_key(&n) {
            if self.plans.len() >= MAX_PLANS {
                self.plans.clear();
            }
            let b = Builder {
                gpu,
                c,
                state,
                buf: &self.buf,
                routing: &self.routing,
                shifts: &self.shifts,
                chunk: self.chunk,
                n,
            };
            let plan = b.build(w)?;
            self.plans.insert(n, plan);
        }
        Ok(&self.plans[&n])
    }

    /// The final norm and lm_head over a step of `n` tokens into `logits` [n, vocab] (for
    /// callers that want every prompt position's logits; not cached).
    pub fn logits_plan(
        &self,
        gpu: &Gpu,
        c: &ModelConfig,
        w: &Weights,
        n: usize,
        logits: &GpuBuffer,
    ) -> Result<Plan> {
        let mut plan = Plan::default();
        let p = &self.buf;
        plan.push(rmsnorm(gpu, c, p, n, &w.final_norm.buffer)?);
        let lm_head = Product::new(&w.lm_head, &p.xn, logits);
        plan.push_matrix("lm_head", lm_head.matmul(gpu, n)?);
        Ok(plan)
    }
}

/// RMSNorm of the `n` tokens of `p.x` with `gain` into `p.xn`.
fn rmsnorm(
    gpu: &Gpu,
    c: &ModelConfig,
    p: &Buffers<GpuBuffer>,
    n: usize,
    gain: &GpuBuffer,
) -> Result<Dispatch> {
    let norm = rmsnorm_f32::RmsNorm {
        x: &p.x,
        gain,
        out: &p.xn,
        n_tokens: n as u32,
        hidden: c.hidden_size as u32,
        eps: c.rms_norm_eps,
    };
    norm.dispatch(gpu)
}

/// What the prefill builders read, for a step of `n` tokens.
struct Builder<'a> {
    gpu: &'a Gpu,
    c: &'a ModelConfig,
    state: &'a State,
    buf: &'a Buffers<GpuBuffer>,
    routing: &'a Routing,
    shifts: &'a [LayerShifts],
    /// The largest step (the size the rope and attention kernels index the qkv rows by).
    chunk: usize,
    n: usize,
}

impl Builder<'_> {
    fn build(&self, w: &Weights) -> Result<Plan> {
        let (gpu, c, p) = (self.gpu, self.c, self.buf);
        let mut plan = Plan::default();
        for d in embed(gpu, c, w, &p.ids, self.n as u32, &p.x) {
            plan.push(d?);
        }
        for (l, lw) in w.layers.iter().enumerate() {
            self.attention(&mut plan, l, lw)?;
            self.moe(&mut plan, l, lw)?;
        }
        Ok(plan)
    }

    fn rmsnorm(&self, gain: &GpuBuffer) -> Result<Dispatch> {
        rmsnorm(self.gpu, self.c, self.buf, self.n, gain)
    }

    /// Where the device has cooperative matrices: each token's f16 shift of `x` [n, width]
    /// into `shift`, for the kernels that read x as f16.
    fn shift(&self, plan: &mut Plan, x: &GpuBuffer, width: usize, shift: &GpuBuffer) -> Result<()> {
        if self.gpu.precision().coop {
            let d = row_shift_f32::RowShift {
                n_tokens: self.n as u32,
                hidden: width as u32,
                x,
                shift,
                x16: &self.buf.x16,
            };
            plan.push(d.dispatch(self.gpu)?);
        }
        Ok(())
    }

    /// `x += o_proj(attention(rope(qkv(norm(x)))))`, appending K and V to the cache.
    fn attention(&self, plan: &mut Plan, l: usize, lw: &LayerWeights) -> Result<()> {
        let (gpu, c, p, n) = (self.gpu, self.c, self.buf, self.n);
        plan.push(self.rmsnorm(&lw.attn_norm.buffer)?);
        self.shift(plan, &p.xn, c.hidden_size, &p.shift)?;
        let s = &self.shifts[l];
        let qkv = (Product::new(&lw.qkv, &p.xn, &p.qkv).bias(&lw.qkv_bias.buffer))
            .f16_shifts(&p.x16, &p.shift, &s.qkv);
        plan.push_matrix("qkv_proj", qkv.matmul(gpu, n)?);
        let attention = self.state.attention(c, l, &p.qkv);
        let rope = rope_kv_append_f32::RopeKvAppend {
            attention,
            max_tokens: self.chunk as u32,
            rope: &self.state.rope,
        };
        let mut d = rope.dispatch(gpu)?;
        d.workgroups = rope.workgroups(gpu, n as u32);
        plan.push(d);
        let attn = attention_prefill_f32::AttentionPrefill {
            attention,
            max_tokens: self.chunk as u32,
            sinks: &lw.sinks.buffer,
            out: &p.attn,
        };
        let mut d = attn.dispatch(gpu)?;
        d.workgroups = attn.grid(gpu, n as u32);
        plan.push(d);
        self.shift(plan, &p.attn, c.q_dim(), &p.attn_shift)?;
        let o = Product::new(&lw.o, &p.attn, &p.x)
            .bias(&lw.o_bias.buffer)
            .residual()
            .f16_shifts(&p.x16, &p.attn_shift, &s.o);
        plan.push_matrix("o_proj", o.matmul(gpu, n)?);
        Ok(())
    }

    /// `x += sum over each token's top-k experts of weight * down(swiglu(gate_up(norm(x))))`,
    /// grouped by expert.
    fn moe(&self, plan: &mut Plan, l: usize, lw: &LayerWeights) -> Result<()> {
        let (gpu, c, p, n) = (self.gpu, self.c, self.buf, self.n as u32);
        let (shape, routing) = (moe_shape(c), self.routing);
        plan.push(self.rmsnorm(&lw.mlp_norm.buffer)?);
        self.shift(plan, &p.xn, c.hidden_size, &p.shift)?;
        let router = router_prefill_f32_bf16w::RouterPrefill {
            w: whole(&lw.router)?,
            n_tokens: n,
            xn: &p.xn,
            bias: &lw.router_bias.buffer,
            logits: &p.router_logits,
        };
        plan.push(router.dispatch(gpu)?);
        let route = moe_route_prefill::MoeRoutePrefill {
            shape,
            n_tokens: n,
            logits: &p.router_logits,
            routing,
        };
        for d in route.dispatches(gpu)? {
            plan.push(d);
        }
        let moe = MoeBuffers {
            shape,
            xn: &p.xn,
            act: &p.act,
            out: &p.y,
        };
        self.experts(plan, l, lw, moe)?;
        let combine = moe_combine_prefill_f32::MoeCombinePrefill {
            shape,
            n_tokens: n,
            y: &p.y,
            routing,
            x: &p.x,
        };
        plan.push(combine.dispatch(gpu)?);
        Ok(())
    }

    /// gate_up then down over every expert part: on cooperative matrices where the device
    /// has them (down only while the SwiGLU clamp keeps its input within f16's range), the
    /// f32 tiles otherwise.
    fn experts(&self, plan: &mut Plan, l: usize, lw: &LayerWeights, moe: MoeBuffers) -> Result<()> {
        let (gpu, p, routing, max_tokens) = (self.gpu, self.buf, self.routing, self.n as u32);
        let limit = self.c.swiglu_limit;
        let coop = gpu.precision().coop && gpu.tuning().coop_moe_only != Some(false);
        let s = &self.shifts[l];
        for (i, experts) in lw.gate_up.parts().iter().enumerate() {
            let d = if coop {
                moe_gate_up_prefill_f16_mf4w::MoeGateUpPrefillF16 {
                    moe,
                    experts,
                    limit,
                    max_tokens,
                    routing,
                    x16: &p.x16,
                    shift: &p.shift,
                    row_exps: &s.gate_up[i],
                }
                .dispatch(gpu)?
            } else {
                moe_gate_up_prefill_f32_mf4w::MoeGateUpPrefill {
                    moe,
                    experts,
                    limit,
                    max_tokens,
                    routing,
                }
                .dispatch(gpu)?
            };
            plan.push(d);
        }
        for (i, experts) in lw.down.parts().iter().enumerate() {
            let d = if coop && moe_down_prefill_f16_mf4w::fits(limit) {
                moe_down_prefill_f16_mf4w::MoeDownPrefillF16 {
                    moe,
                    experts,
                    limit,
                    max_tokens,
                    routing,
                    row_exps: &s.down[i],
                }
                .dispatch(gpu)?
            } else {
                moe_down_prefill_f32_mf4w::MoeDownPrefill {
                    moe,
                    experts,
                    max_tokens,
                    routing,
                }
                .dispatch(gpu)?
            };
            plan.push(d);
        }
        Ok(())
    }
}
