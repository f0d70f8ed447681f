//! The whole gpt-oss forward pass on the CPU, built from the per-kernel references: the
//! reference that GPU generation is tested against on tiny models. It follows `Transformer` in
//! https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py.
//!
//! x = emb(ids); per layer: x += Attn(RMSNorm(x)) (sliding window on sliding layers), then
//! x += MoE(RMSNorm(x)); logits = Unemb(RMSNorm(x)). No KV cache: every call recomputes all
//! positions from 0, which is exactly what the prompt logits are.

use super::*;
use crate::checkpoint::{LayerTensor as L, TensorId, WeightSource};
use crate::error::Result;
use crate::model::rope;

/// Logits [ids.len(), vocab] at every position of `ids`.
pub fn forward(src: &dyn WeightSource, ids: &[u32]) -> Result<Vec<f32>> {
    forward_with(src, ids, false)
}

/// Like [`forward`]; with `kv_f16`, cached keys (after RoPE) and values are rounded to f16 as
/// the GPU's f16 KV cache stores them: the measure of what that rounding alone changes.
pub fn forward_with(src: &dyn WeightSource, ids: &[u32], kv_f16: bool) -> Result<Vec<f32>> {
    let c = src.config().clone();
    let (h, t_len) = (c.hidden_size, ids.len());
    let d = c.head_dim;
    let table = rope::table(&c, t_len);
    let positions: Vec<usize> = (0..t_len).collect();

    let emb = src.tensor(TensorId::Embedding)?;
    let mut x = embed_f32_bf16w(&emb.data, h, ids);

    for l in 0..c.num_hidden_layers {
        let get = |t: L| src.tensor(TensorId::Layer(l, t));
        let f32v = |t: L| get(t).map(|v| v.to_f32());
        let attn_norm = f32v(L::AttnNorm)?;
        let (wq, wk, wv, wo) = (
            get(L::QWeight)?,
            get(L::KWeight)?,
            get(L::VWeight)?,
            get(L::OWeight)?,
        );
        let (bq, bk, bv, bo) = (
            f32v(L::QBias)?,
            f32v(L::KBias)?,
            f32v(L::VBias)?,
            f32v(L::OBias)?,
        );
        let sinks = f32v(L::Sinks)?;

        let qkv = per_token(t_len, |t| {
            let xt = &x[t * h..(t + 1) * h];
            let norm = Some((attn_norm.as_slice(), c.rms_norm_eps));
            let mut qt = matvec_f32_bf16w(&wq.data, xt, norm, Some(&bq), None);
            let mut kt = matvec_f32_bf16w(&wk.data, xt, norm, Some(&bk), None);
            for head in qt.chunks_exact_mut(d) {
                rope_f32(head, t, &table);
            }
            for head in kt.chunks_exact_mut(d) {
                rope_f32(head, t, &table);
            }
            let vt = matvec_f32_bf16w(&wv.data, xt, norm, Some(&bv), None);
            (qt, kt, vt)
        });
        let mut q = Vec::with_capacity(t_len * c.q_dim());
        let mut k = Vec::with_capacity(t_len * c.kv_dim());
        let mut v = Vec::with_capacity(t_len * c.kv_dim());
        for (qt, kt, vt) in qkv {
            q.extend(qt);
            k.extend(kt);
            v.extend(vt);
        }
        if kv_f16 {
            for e in k.iter_mut().chain(v.iter_mut()) {
                *e = half::f16::from_f32(*e).to_f32();
            }
        }
        let shape = AttentionShape {
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_key_value_heads,
            head_dim: d,
            window: if c.is_sliding(l) { c.sliding_window } else { 0 },
        };
        let attn = attention_f32(shape, &q, &positions, &k, &v, &sinks);
        x = per_token(t_len, |t| {
            let a = &attn[t * c.q_dim()..(t + 1) * c.q_dim()];
            let xt = &x[t * h..(t + 1) * h];
            matvec_f32_bf16w(&wo.data, a, None, Some(&bo), Some(xt))
        })
        .concat();

        let mlp_norm = f32v(L::MlpNorm)?;
        let router_w = get(L::RouterWeight)?;
        let router_b = f32v(L::RouterBias)?;
        let gate_up_blocks = get(L::GateUpBlocks)?;
        let gate_up_scales = get(L::GateUpScales)?;
        let down_blocks = get(L::DownBlocks)?;
        let down_scales = get(L::DownScales)?;
        let gate_up_bias = f32v(L::GateUpBias)?;
        let down_bias = f32v(L::DownBias)?;
        let experts = ExpertsRef {
            hidden: h,
            inter: c.intermediate_size,
            gate_up_blocks: &gate_up_blocks.data,
            gate_up_scales: &gate_up_scales.data,
            gate_up_bias: &gate_up_bias,
            down_blocks: &down_blocks.data,
            down_scales: &down_scales.data,
            down_bias: &down_bias,
        };
        x = per_token(t_len, |t| {
            let xt = &x[t * h..(t + 1) * h];
            let norm = Some((mlp_norm.as_slice(), c.rms_norm_eps));
            let logits = matvec_f32_bf16w(&router_w.data, xt, norm, Some(&router_b), None);
            moe_f32_mf4w(
                xt,
                &mlp_norm,
                c.rms_norm_eps,
                &logits,
                c.experts_per_token,
                c.swiglu_limit,
                &experts,
            )
        })
        .concat();
    }

    let final_norm = src.tensor(TensorId::FinalNorm)?.to_f32();
    let lm_head = src.tensor(TensorId::LmHead)?;
    let logits = per_token(t_len, |t| {
        let xt = &x[t * h..(t + 1) * h];
        matvec_f32_bf16w(
            &lm_head.data,
            xt,
            Some((&final_norm, c.rms_norm_eps)),
            None,
            None,
        )
    });
    Ok(logits.concat())
}

/// `f(t)` for every position t < n, spread over the CPU's threads, results in position order.
/// Each position is computed exactly as alone, so the result does not depend on the threads.
fn per_token<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n.max(1));
    let per = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| s.spawn(move || (i * per..((i + 1) * per).min(n)).map(f).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("reference thread panicked"))
            .collect()
    })
}
