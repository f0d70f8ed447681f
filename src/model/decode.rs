//! Decode: one token through every layer, recorded once as a [`Plan`].
//!
//! The plan reads the token id that the sampler left on the GPU and the position from the
//! step uniform, so a step is one write of the uniform and one submit; only attention's grid
//! depends on the position. Per layer it follows gpt-oss's model.py
//! (https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py, `TransformerBlock`):
//! `x = attn(x); x = mlp(x)`, each with its RMSNorm fused into the first matvec.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::{Gpu, GpuBuffer};
use crate::kernels::moe::MoeBuffers;
use crate::kernels::*;
use crate::model::activations::activations;
use crate::model::forward::{moe_shape, qkv_stride, State};
use crate::model::matrix::{embed, whole, Product};
use crate::model::plan::Plan;
use crate::model::weights::{LayerWeights, Weights};

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
        /// The MLP-normalised token, written by the router for the expert kernels.
        xn: "xn",
        /// The router's logits [n_experts] and its workgroups' counter (router_f32_bf16w).
        router_logits: "router_logits",
        /// The router's choice: expert ids [k] then weights [k] (f32 bits).
        route: "route",
        act: "act",
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
            xn: f(h),
            router_logits: f(c.num_experts + 1),
            route: f(2 * k),
            act: f(k * c.intermediate_size),
        }
    }
}

impl Buffers<GpuBuffer> {
    pub fn new(gpu: &Gpu, c: &ModelConfig, ctx: usize) -> Result<Self> {
        Buffers::sizes(c, ctx).allocate(gpu, "decode")
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
    for d in embed(gpu, c, w, tokens, 1, &buf.x) {
        plan.push(d?);
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
        let qkv = Product::new(&lw.qkv, &d.x, &d.qkv)
            .norm(&lw.attn_norm.buffer, c.rms_norm_eps)
            .bias(&lw.qkv_bias.buffer);
        plan.push_matrix("qkv_proj", qkv.matvec(gpu)?);
        let attn = attention_decode_f32::AttentionDecode {
            attention: self.state.attention(c, l, &d.qkv),
            partials: &d.partials,
            rope: &self.state.rope,
            sinks: &lw.sinks.buffer,
            out: &d.attn,
            // o_proj's first part: all of it unless the matrix is split over buffers.
            prefetch: Some(&lw.o.parts[0].buffer).filter(|o| prefetch::worth_it(gpu, o.bytes)),
        };
        // Short contexts take one query head per workgroup, long ones a KV head's group: the
        // split not used at a position gets no workgroups.
        let window = self.state.kv[l].window;
        use attention_decode_f32::HeadSplit;
        for split in [HeadSplit::One, HeadSplit::Grouped] {
            if attention_decode_f32::split_used(split, window) {
                let grid = attn.grid_shape(split);
                plan.push_per_position(attn.dispatch(gpu, split)?, move |pos| grid.at(pos));
            }
        }
        // Where one chunk covers the visible positions, attention_decode_f32 has written attn.
        if !attention_decode_f32::always_single_chunk(window) {
            let combine = attention_combine_f32::AttentionCombine {
                n_heads: c.num_attention_heads as u32,
                head_dim: c.head_dim as u32,
                window,
                step: &self.state.step,
                partials: &d.partials,
                sinks: &lw.sinks.buffer,
                out: &d.attn,
            }
            .dispatch(gpu)?;
            let heads = c.num_attention_heads as u32;
            plan.push_per_position(combine, move |pos| {
                let needed = !attention_decode_f32::single_chunk(pos, window);
                [if needed { heads } else { 0 }, 1, 1]
            });
        }
        let o = Product::new(&lw.o, &d.attn, &d.x)
            .bias(&lw.o_bias.buffer)
            .residual();
        plan.push_matrix("o_proj", o.matvec(gpu)?);
        Ok(())
    }

    /// `x += sum over the top-k experts of weight * down(swiglu(gate_up(norm(x))))`.
    fn moe(&self, plan: &mut Plan, lw: &LayerWeights) -> Result<()> {
        let (gpu, c, d) = (self.gpu, self.c, self.buf);
        let shape = moe_shape(c);
        let router = router_f32_bf16w::Router {
            w: whole(&lw.router)?,
            k: shape.k,
            x: &d.x,
            gain: &lw.mlp_norm.buffer,
            eps: c.rms_norm_eps,
            bias: &lw.router_bias.buffer,
            xn: &d.xn,
            logits: &d.router_logits,
            route: &d.route,
        };
        for d in router.dispatches(gpu)? {
            plan.push(d);
        }
        let moe = MoeBuffers {
            shape,
            xn: &d.xn,
            act: &d.act,
            out: &d.x,
        };
        let route = &d.route;
        for experts in &lw.gate_up.parts() {
            let gate_up = moe_gate_up_f32_mf4w::MoeGateUp {
                moe,
                experts,
                limit: c.swiglu_limit,
                route,
            };
            plan.push(gate_up.dispatch(gpu)?);
        }
        for experts in &lw.down.parts() {
            let down = moe_down_f32_mf4w::MoeDown {
                moe,
                experts,
                route,
            };
            plan.push(down.dispatch(gpu)?);
        }
        Ok(())
    }
}
