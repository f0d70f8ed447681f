//! Synthetic weights with the exact shapes of a config, generated straight into GPU buffers by
//! the fill_random kernel: benchmarks of gpt-oss-20b and -120b need no download and no disk.
//! Values are seeded and sane (small bf16 weights, gains near 1, E8M0 scales spread like a real
//! checkpoint's, around 2^-5), so the arithmetic is as busy as with real weights.

use crate::config::{LayerType, ModelConfig};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer};
use crate::kernels::fill_random::{FillRandom, Mode};
use crate::model::weights::{
    plan_expert_split, row_parts, Bf16Matrix, ExpertPart, ExpertTensor, ExpertWeights, F32Vector,
    LayerWeights, MatrixPart, Weights,
};

/// The configs `--synthetic` knows: gpt-oss-20b and -120b, and a tiny one of the same shape.
pub fn preset(name: &str) -> Result<ModelConfig> {
    match name {
        "20b" => Ok(ModelConfig::gpt_oss_20b()),
        "120b" => Ok(ModelConfig::gpt_oss_120b()),
        "tiny" => {
            let layers = 3;
            Ok(ModelConfig {
                num_hidden_layers: layers,
                num_experts: 8,
                hidden_size: 256,
                intermediate_size: 256,
                num_attention_heads: 8,
                num_key_value_heads: 2,
                vocab_size: 4096,
                layer_types: LayerType::alternating(layers),
                ..ModelConfig::gpt_oss_20b()
            })
        }
        other => Err(Error::argument(
            "--synthetic",
            format!("unknown preset '{other}'; choose 20b, 120b or tiny"),
        )),
    }
}

enum Fill {
    Bf16(f32),
    Bytes,
    Scales(u8, u8),
    F32(f32, f32),
}

struct Filler<'a> {
    gpu: &'a Gpu,
    seed: u32,
    pending: Vec<crate::gpu::Dispatch>,
}

impl Filler<'_> {
    fn buffer(&mut self, label: &str, bytes: u64, fill: Fill) -> Result<GpuBuffer> {
        let buf = self.gpu.storage(label, bytes)?;
        let mode = match fill {
            Fill::Bf16(a) => Mode::Bf16 { lo: -a, hi: a },
            Fill::Bytes => Mode::Bytes,
            Fill::Scales(lo, hi) => Mode::Integers {
                lo: lo as f32,
                hi: hi as f32,
            },
            Fill::F32(lo, hi) => Mode::F32 { lo, hi },
        };
        self.seed = self.seed.wrapping_add(1);
        let words = bytes.div_ceil(4) as u32;
        self.pending.push(
            FillRandom {
                out: &buf,
                n_words: words,
                mode,
                seed: self.seed,
            }
            .dispatch(self.gpu)?,
        );
        if self.pending.len() >= 64 {
            self.flush()?;
        }
        Ok(buf)
    }

    fn flush(&mut self) -> Result<()> {
        let refs: Vec<_> = self.pending.iter().collect();
        self.gpu.run("synthetic weights", &refs)?;
        self.pending.clear();
        Ok(())
    }

    fn matrix(&mut self, label: &str, rows: usize, cols: usize, a: f32) -> Result<Bf16Matrix> {
        let row_bytes = cols as u64 * 2;
        let mut parts = Vec::new();
        for (l, first, n) in row_parts(self.gpu, label, rows, row_bytes)? {
            let buffer = self.buffer(&l, n as u64 * row_bytes, Fill::Bf16(a))?;
            parts.push(MatrixPart {
                buffer,
                first_row: first,
                rows: n,
            });
        }
        Ok(Bf16Matrix { rows, cols, parts })
    }

    fn vector(&mut self, label: &str, len: usize, lo: f32, hi: f32) -> Result<F32Vector> {
        Ok(F32Vector {
            buffer: self.buffer(label, len as u64 * 4, Fill::F32(lo, hi))?,
            len,
        })
    }

    fn experts(
        &mut self,
        c: &ModelConfig,
        label: &str,
        rows: usize,
        cols: usize,
        ranges: &[(usize, usize)],
    ) -> Result<ExpertWeights> {
        let mut t = |suffix: &str, per_expert: u64, fill: fn() -> Fill| -> Result<ExpertTensor> {
            let mut parts = Vec::new();
            for (i, &(first, n)) in ranges.iter().enumerate() {
                let l = if ranges.len() > 1 {
                    format!("{label}_{suffix}.part{i}")
                } else {
                    format!("{label}_{suffix}")
                };
                parts.push(ExpertPart {
                    buffer: self.buffer(&l, n as u64 * per_expert, fill())?,
                    first_expert: first,
                    n_experts: n,
                });
            }
            Ok(ExpertTensor { parts })
        };
        let _ = c;
        let r = rows as u64;
        Ok(ExpertWeights {
            rows,
            cols,
            blocks: t("blocks", r * cols as u64 / 2, || Fill::Bytes)?,
            scales: t("scales", r * cols as u64 / 32, || Fill::Scales(118, 124))?,
            bias: t("bias", r * 4, || Fill::F32(-0.01, 0.01))?,
        })
    }
}

impl Weights {
    /// Random weights of `config`'s exact shapes, split to the device's limits like a loaded
    /// checkpoint.
    pub fn synthetic(gpu: &Gpu, c: &ModelConfig, seed: u32) -> Result<Weights> {
        let limit = gpu.max_binding().min(gpu.max_buffer());
        let mut f = Filler {
            gpu,
            seed,
            pending: Vec::new(),
        };
        let (h, i, e) = (c.hidden_size, c.intermediate_size, c.num_experts);
        let a = 0.03;
        let embedding = f.matrix("synthetic.embed_tokens", c.vocab_size, h, 1.0)?;
        let per_expert = [2 * i as u64 * h as u64 / 2, h as u64 * i as u64 / 2];
        let ranges =
            plan_expert_split(e, &per_expert, limit).ok_or_else(|| Error::BindingTooLarge {
                label: "synthetic experts".into(),
                bytes: per_expert[0],
                limit,
            })?;
        let mut layers = Vec::new();
        for l in 0..c.num_hidden_layers {
            let p = format!("synthetic.layers.{l}");
            layers.push(LayerWeights {
                attn_norm: f.vector(&format!("{p}.input_layernorm"), h, 0.9, 1.1)?,
                qkv: f.matrix(&format!("{p}.qkv_proj"), c.q_dim() + 2 * c.kv_dim(), h, a)?,
                qkv_bias: f.vector(
                    &format!("{p}.qkv_proj.bias"),
                    c.q_dim() + 2 * c.kv_dim(),
                    -0.01,
                    0.01,
                )?,
                o: f.matrix(&format!("{p}.o_proj"), h, c.q_dim(), a)?,
                o_bias: f.vector(&format!("{p}.o_proj.bias"), h, -0.01, 0.01)?,
                sinks: f.vector(&format!("{p}.sinks"), c.num_attention_heads, -1.0, 1.0)?,
                mlp_norm: f.vector(&format!("{p}.post_attention_layernorm"), h, 0.9, 1.1)?,
                router: f.matrix(&format!("{p}.router"), e, h, a)?,
                router_bias: f.vector(&format!("{p}.router.bias"), e, -0.1, 0.1)?,
                gate_up: f.experts(c, &format!("{p}.gate_up_proj"), 2 * i, h, &ranges)?,
                down: f.experts(c, &format!("{p}.down_proj"), h, i, &ranges)?,
                expert_ranges: ranges.clone(),
            });
        }
        let final_norm = f.vector("synthetic.norm", h, 0.9, 1.1)?;
        let lm_head = f.matrix("synthetic.lm_head", c.vocab_size, h, a)?;
        f.flush()?;
        Ok(Weights {
            embedding,
            layers,
            final_norm,
            lm_head,
        })
    }
}
