//! Decode: one token through every layer, recorded once as a [`Plan`].
//!
//! The plan reads the token id that the sampler left on the GPU and the position from the
//! step uniform, so a step is one write of the uniform and one submit; only attention's grid
//! depends on the position. Per layer it follows gpt-oss's model.py
//! (https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py, `TransformerBlock`):
//! `x = attn(x); x = mlp(x)`, each with its RMSNorm fused into the first matvec.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};
use crate::kernels::*;
use crate::model::activations::activations;
use crate::model::forward::{qkv_stride, State};
use crate::model::plan::Plan;
use crate::model::weights::{Bf16Matrix, LayerWeights, Weights};

activations! {
    /// The decode path's activations for one token: sizes in bytes (`Buffers<u64>`, for the
    /// memory plan) or the buffers themselves.
    pub struct Buffers {
        /// The residual stream [hidden].
        x: "x",
        qkv: "qkv",
        attn: "attn",
        /// attention_decode_f32's per-chunk partial results, combined with the sinks.
        partials: "attn_partials",
        router_logits: "router_logits",
        /// The MLP-normalised token, written by the router matvec for the expert kernels.
        xn: "xn",
        /// The router's choice: expert ids [k] then weights [k] (f32 bits).
        route: "route",
        act: "act",
        /// Weighted expert outputs [k, hidden], summed into x by moe_combine_f32.
        moe_out: "moe_out",
    }
}

impl Buffers<u64> {
    /// Bytes of each buffer for a context of `ctx` positions.
    pub fn sizes(c: &ModelConfig, ctx: usize) -> Self {
        let f = |n: usize| n as u64 * 4;
        let (h, k) = (c.hidden_size, c.experts_per_token);
        let partials = attention_decode_f32::partials_len(
            c.num_attention_heads as u32,
            c.head_dim as u32,
            ctx as u32,
        );
        Buffers {
            x: f(h),
            qkv: f(qkv_stride(c)),
            attn: f(c.q_dim()),
            partials: 4 * partials,
            router_logits: f(c.num_experts),
            xn: f(h),
            route: f(2 * k),
            act: f(k * c.intermediate_size),
            moe_out: f(k * h),
        }
    }

}

impl Buffers<GpuBuffer> {
    pub fn new(gpu: &Gpu, c: &ModelConfig, ctx: usize) -> Result<Self> {
        Buffers::sizes(c, ctx).allocate(gpu, "decode")
    }
}

/// One decode matvec of `m` (one dispatch per stored part): `out = m norm(x) + bias`, added
/// to `out` with `residual`; optionally also the normalised input and per-workgroup maxima.
pub struct MatvecOf<'a> {
    m: &'a Bf16Matrix,
    x: &'a GpuBuffer,
    out: &'a GpuBuffer,
    norm: Option<(&'a GpuBuffer, f32)>,
    bias: Option<&'a GpuBuffer>,
    residual: bool,
    /// The normalised input (written by the first part only).
    normed_out: Option<&'a GpuBuffer>,
    /// Per-workgroup (max, id) pairs, indexed across parts.
    argmax: Option<&'a GpuBuffer>,
}

impl<'a> MatvecOf<'a> {
    pub fn new(m: &'a Bf16Matrix, x: &'a GpuBuffer, out: &'a GpuBuffer) -> Self {
        MatvecOf {
            m,
            x,
            out,
            norm: None,
            bias: None,
            residual: false,
            normed_out: None,
            argmax: None,
        }
    }

    /// RMSNorm of `x` with `gain` first.
    pub fn norm(self, gain: &'a GpuBuffer, eps: f32) -> Self {
        MatvecOf {
            norm: Some((gain, eps)),
            ..self
        }
    }

    pub fn bias(self, bias: &'a GpuBuffer) -> Self {
        MatvecOf {
            bias: Some(bias),
            ..self
        }
    }

    /// Adds to `out` instead of overwriting it.
    pub fn residual(self) -> Self {
        MatvecOf {
            residual: true,
            ..self
        }
    }

    pub fn normed_out(self, buf: &'a GpuBuffer) -> Self {
        MatvecOf {
            normed_out: Some(buf),
            ..self
        }
    }

    pub fn argmax(self, buf: &'a GpuBuffer) -> Self {
        MatvecOf {
            argmax: Some(buf),
            ..self
        }
    }
}

impl MatvecOf<'_> {
    pub fn dispatches(&self, gpu: &Gpu) -> Result<Vec<Dispatch>> {
        let mut argmax_offset = 0;
        let parts = self.m.parts.iter().enumerate();
        parts
            .map(|(i, p)| {
                let d = matvec_f32_bf16w::dispatch(
                    gpu,
                    &matvec_f32_bf16w::Matvec {
                        w: &p.buffer,
                        rows: p.rows as u32,
                        k: self.m.cols as u32,
                        out_offset: p.first_row as u32,
                        x: self.x,
                        norm: self.norm,
                        bias: self.bias,
                        residual: self.residual,
                        out: self.out,
                        normed_out: self.normed_out.filter(|_| i == 0),
                        argmax: self.argmax.map(|a| (a, argmax_offset)),
                    },
                );
                argmax_offset += matvec_f32_bf16w::workgroups(p.rows as u32);
                d
            })
            .collect()
    }
}

/// What the decode builders read: the device, the model's shape, the shared state and this
/// path's buffers.
struct Builder<'a> {
    gpu: &'a Gpu,
    c: &'a ModelConfig,
    state: &'a State,
    buf: &'a Buffers<GpuBuffer>,
}

/// Builds the decode plan: embedding of `tokens[0]`, then attention and MoE per layer.
pub fn build(
    gpu: &Gpu,
    c: &ModelConfig,
    state: &State,
    buf: &Buffers<GpuBuffer>,
    w: &Weights,
    tokens: &GpuBuffer,
) -> Result<Plan> {
    let b = Builder { gpu, c, state, buf };
    let mut plan = Plan::default();
    for p in &w.embedding.parts {
        plan.push(embed_f32_bf16w::dispatch(
            gpu,
            &p.buffer,
            p.first_row as u32,
            p.rows as u32,
            c.hidden_size as u32,
            tokens,
            1,
            &buf.x,
        )?);
    }
    for (l, lw) in w.layers.iter().enumerate() {
        b.attention(&mut plan, l, lw)?;
        b.moe(&mut plan, lw)?;
    }
    Ok(plan)
}

impl Builder<'_> {
    /// `x += o_proj(attention(rope(qkv(norm(x)))))` with the layer's sinks.
    fn attention(&self, plan: &mut Plan, l: usize, lw: &LayerWeights) -> Result<()> {
        let (gpu, c, d) = (self.gpu, self.c, self.buf);
        let qkv = MatvecOf::new(&lw.qkv, &d.x, &d.qkv)
            .norm(&lw.attn_norm.buffer, c.rms_norm_eps)
            .bias(&lw.qkv_bias.buffer);
        plan.push_matrix("qkv_proj", qkv.dispatches(gpu)?);
        let kv = &self.state.kv[l];
        let ap = attention_decode_f32::Params {
            n_heads: c.num_attention_heads as u32,
            n_kv_heads: c.num_key_value_heads as u32,
            capacity: kv.capacity,
            window: kv.window,
            qkv_stride: qkv_stride(c) as u32,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            _pad: [0; 2],
        };
        let attn = attention_decode_f32::dispatch(
            gpu,
            ap,
            c.head_dim as u32,
            &self.state.step,
            &d.qkv,
            &kv.k,
            &kv.v,
            &d.partials,
            &self.state.rope,
        )?;
        plan.push_per_position(attn, move |pos| attention_decode_f32::grid(&ap, pos));
        plan.push(attention_combine_f32::dispatch(
            gpu,
            c.num_attention_heads as u32,
            c.head_dim as u32,
            kv.window,
            &self.state.step,
            &d.partials,
            &lw.sinks.buffer,
            &d.attn,
        )?);
        let o = MatvecOf::new(&lw.o, &d.attn, &d.x)
            .bias(&lw.o_bias.buffer)
            .residual();
        plan.push_matrix("o_proj", o.dispatches(gpu)?);
        Ok(())
    }

    /// `x += sum over the top-k experts of weight * down(swiglu(gate_up(norm(x))))`.
    fn moe(&self, plan: &mut Plan, lw: &LayerWeights) -> Result<()> {
        let (gpu, c, d) = (self.gpu, self.c, self.buf);
        let router = MatvecOf::new(&lw.router, &d.x, &d.router_logits)
            .norm(&lw.mlp_norm.buffer, c.rms_norm_eps)
            .bias(&lw.router_bias.buffer)
            .normed_out(&d.xn);
        plan.push_matrix("router", router.dispatches(gpu)?);
        plan.push(router_topk_f32::dispatch(
            gpu,
            c.num_experts as u32,
            c.experts_per_token as u32,
            &d.router_logits,
            &d.route,
        )?);
        for (part, e0, n) in lw.gate_up.parts() {
            let p = moe_gate_up_f32_mf4w::Params {
                hidden: c.hidden_size as u32,
                inter: c.intermediate_size as u32,
                k: c.experts_per_token as u32,
                e0,
                n_part: n,
                limit: c.swiglu_limit,
                _pad: [0; 2],
            };
            plan.push(moe_gate_up_f32_mf4w::dispatch(
                gpu, p, &d.route, &d.xn, &part, &d.act,
            )?);
        }
        for (part, e0, n) in lw.down.parts() {
            let p = moe_down_f32_mf4w::Params {
                hidden: c.hidden_size as u32,
                inter: c.intermediate_size as u32,
                k: c.experts_per_token as u32,
                e0,
                n_part: n,
                _pad: [0; 3],
            };
            plan.push(moe_down_f32_mf4w::dispatch(
                gpu, p, &d.route, &d.act, &part, &d.moe_out,
            )?);
        }
        plan.push(moe_down_f32_mf4w::combine(
            gpu,
            c.hidden_size as u32,
            c.experts_per_token as u32,
            &d.moe_out,
            &d.x,
        )?);
        Ok(())
    }
}
