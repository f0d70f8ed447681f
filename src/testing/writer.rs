//! Test support: seeded random weights in canonical form, and writers that store them in every
//! checkpoint layout the loader reads. Tests (layouts, golden outputs, the CLI) build tiny
//! checkpoints with it; nothing on the load path uses it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::checkpoint::mxfp4;
use crate::checkpoint::names::{ExpertMatrix, LayerTensor, TensorId, TensorKind};
use crate::checkpoint::shards::INDEX;
use crate::checkpoint::tensor::{canonical_shape, element_count, DType, Tensor, WeightSource};
use crate::config::{LayerType, ModelConfig, CONFIG, GENERATION_CONFIG};
use crate::error::{Error, Result};
use crate::testing::tokenizer::{added_specials, bpe_json, byte_vocab, HARMONY_SPECIALS};

/// A small config with every size different, so a transposed or swapped dimension shows; the
/// rest is gpt-oss-20b's.
pub fn tiny_config() -> ModelConfig {
    let layers = 3;
    ModelConfig {
        num_hidden_layers: layers,
        num_experts: 4,
        experts_per_token: 2,
        hidden_size: 64,
        intermediate_size: 64,
        head_dim: 16,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        vocab_size: 300,
        sliding_window: 8,
        layer_types: LayerType::alternating(layers),
        eos_token_ids: vec![200, 201],
        ..ModelConfig::gpt_oss_20b()
    }
}

/// Deterministic xorshift generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * a
    }
}

fn bf16_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values
        .into_iter()
        .flat_map(|v| half::bf16::from_f32(v).to_bits().to_le_bytes())
        .collect()
}

fn bf16_to_f32_bytes(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(2)
        .flat_map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16).to_le_bytes())
        .collect()
}

/// One tensor to write: what a safetensors header says plus the bytes.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl safetensors::View for &RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn st_dtype(d: DType) -> safetensors::Dtype {
    match d {
        DType::BF16 => safetensors::Dtype::BF16,
        DType::F32 => safetensors::Dtype::F32,
        DType::U8 => safetensors::Dtype::U8,
    }
}

/// A canonical tensor owned in memory.
#[derive(Clone, Debug)]
pub struct OwnedTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl OwnedTensor {
    fn raw(&self) -> RawTensor {
        RawTensor {
            dtype: st_dtype(self.dtype),
            shape: self.shape.clone(),
            data: self.data.clone(),
        }
    }
}

/// Where [`WeightSet::write`] puts the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteLayout {
    /// `model.*` with MXFP4 experts in `shards` files (an index when more than one), HF config.
    HfMxfp4 { shards: usize },
    /// `block.*` in model.safetensors, original config naming (the hub's original/ folder).
    Original,
    /// Both key sets in one file, HF config.
    Both,
    /// `model.*` with dense BF16 experts [E, in, out] and F32 norms, HF config.
    HfBf16,
    /// A hub snapshot: HF MXFP4 at the root (two shards) and the original layout in original/.
    Hub,
}

/// Magnitudes of [`WeightSet::random_with`].
#[derive(Clone, Copy, Debug)]
pub struct WeightScales {
    /// None: BF16 matrices uniform in [-1, 1). Some(g): scaled by fan-in so that each output
    /// has standard deviation g for inputs of unit variance, as in a trained model, whatever
    /// the width.
    pub matrix_gain: Option<f32>,
    /// E8M0 scale bytes, drawn uniformly from this inclusive range.
    pub expert_scales: (u8, u8),
}

impl WeightScales {
    /// Large weights on tiny widths, so that every term of the arithmetic is visible; scales
    /// in 110..=130 like real checkpoints' spread.
    pub const TINY: WeightScales = WeightScales {
        matrix_gain: None,
        expert_scales: (110, 130),
    };
    /// Real widths with activations of a trained model's size: attention scores of a few
    /// units, MXFP4 scales 2^-9..2^-3 (the range synthetic.rs fills).
    pub const REAL: WeightScales = WeightScales {
        matrix_gain: Some(2.0),
        expert_scales: (118, 124),
    };
}

/// Every tensor of a model in canonical form.
pub struct WeightSet {
    pub config: ModelConfig,
    pub tensors: HashMap<TensorId, OwnedTensor>,
}

impl WeightSet {
    /// Seeded random weights of [`WeightScales::TINY`]. MXFP4 blocks are canonical (each
    /// 32-block's largest magnitude is 4 or 6 times its scale, and no -0 nibble), so quantizing
    /// their exact BF16 values gives the same bytes back.
    pub fn random(config: &ModelConfig, seed: u64) -> WeightSet {
        Self::random_with(config, seed, WeightScales::TINY)
    }

    /// Seeded random weights with the magnitudes `scales` asks for.
    pub fn random_with(config: &ModelConfig, seed: u64, scales: WeightScales) -> WeightSet {
        let mut rng = Rng::new(seed);
        let mut tensors = HashMap::new();
        for id in TensorId::all(config.num_hidden_layers) {
            let shape = canonical_shape(config, id);
            let n = element_count(&shape).unwrap_or(0);
            let (dtype, data) = match id.kind() {
                TensorKind::Matrix => {
                    let a = match scales.matrix_gain {
                        None => 1.0,
                        // Uniform in [-a, a) has variance a^2 / 3: outputs of variance gain^2
                        // for inputs of unit variance.
                        Some(g) => g * (3.0 / shape[shape.len() - 1] as f32).sqrt(),
                    };
                    (DType::BF16, bf16_bytes((0..n).map(|_| rng.sym(a))))
                }
                TensorKind::Norm => (DType::BF16, bf16_bytes((0..n).map(|_| 1.0 + rng.sym(0.25)))),
                TensorKind::Bias | TensorKind::ExpertBias => {
                    (DType::BF16, bf16_bytes((0..n).map(|_| rng.sym(0.5))))
                }
                TensorKind::Sinks => (DType::BF16, bf16_bytes((0..n).map(|_| rng.sym(2.0)))),
                TensorKind::ExpertBlocks => (DType::U8, canonical_blocks(&mut rng, n)),
                TensorKind::ExpertScales => {
                    let (lo, hi) = scales.expert_scales;
                    let span = (hi - lo) as u64 + 1;
                    (
                        DType::U8,
                        (0..n).map(|_| lo + rng.below(span) as u8).collect(),
                    )
                }
            };
            tensors.insert(id, OwnedTensor { dtype, shape, data });
        }
        WeightSet {
            config: config.clone(),
            tensors,
        }
    }

    fn get(&self, id: TensorId) -> &OwnedTensor {
        // Every id of the config is inserted by `random`; a caller that removed one wants to
        // see it fail loudly in its test.
        self.tensors
            .get(&id)
            .unwrap_or_else(|| panic!("WeightSet has no {}", id.hf_name()))
    }

    /// The named tensors of the Hugging Face MXFP4 layout.
    pub fn hf_tensors(&self) -> Vec<(String, RawTensor)> {
        TensorId::all(self.config.num_hidden_layers)
            .into_iter()
            .map(|id| (id.hf_name(), self.get(id).raw()))
            .collect()
    }

    /// The named tensors of the original layout: q, k and v fused by rows into attn.qkv.
    pub fn original_tensors(&self) -> Vec<(String, RawTensor)> {
        use LayerTensor::*;
        let mut out = Vec::new();
        for id in TensorId::all(self.config.num_hidden_layers) {
            let name = id.original_name();
            match (id, name.qkv) {
                (_, None) => out.push((name.name, self.get(id).raw())),
                // Written once, when q is met.
                (TensorId::Layer(l, QWeight | QBias), Some(_)) => {
                    let is_weight = matches!(id, TensorId::Layer(_, QWeight));
                    let parts = if is_weight {
                        [QWeight, KWeight, VWeight]
                    } else {
                        [QBias, KBias, VBias]
                    };
                    let mut data = Vec::new();
                    let mut rows = 0;
                    for p in parts {
                        let t = self.get(TensorId::Layer(l, p));
                        data.extend_from_slice(&t.data);
                        rows += t.shape[0];
                    }
                    let mut shape = self.get(id).shape.clone();
                    shape[0] = rows;
                    out.push((
                        name.name,
                        RawTensor {
                            dtype: safetensors::Dtype::BF16,
                            shape,
                            data,
                        },
                    ));
                }
                _ => {}
            }
        }
        out
    }

    /// The named tensors of the HF layout with dense BF16 experts [E, in, out] (the exact
    /// dequantization of the MXFP4 ones) and F32 norm gains.
    pub fn hf_bf16_tensors(&self) -> Vec<(String, RawTensor)> {
        let c = &self.config;
        let mut out = Vec::new();
        for id in TensorId::all(c.num_hidden_layers) {
            match (id, id.kind()) {
                (_, TensorKind::ExpertScales) => {}
                (TensorId::Layer(l, t), TensorKind::ExpertBlocks) => {
                    let m = t.expert_matrix().unwrap_or(ExpertMatrix::GateUp);
                    let [b, s, _] = m.tensors();
                    let (o, i) = m.out_in(c);
                    let e = c.num_experts;
                    let values = mxfp4::decode(
                        &self.get(TensorId::Layer(l, b)).data,
                        &self.get(TensorId::Layer(l, s)).data,
                    );
                    let mut dense = vec![0f32; values.len()];
                    for x in 0..e {
                        for r in 0..o {
                            for k in 0..i {
                                dense[x * i * o + k * o + r] = values[x * o * i + r * i + k];
                            }
                        }
                    }
                    out.push((
                        m.hf_dense_name(l),
                        RawTensor {
                            dtype: safetensors::Dtype::BF16,
                            shape: vec![e, i, o],
                            data: bf16_bytes(dense),
                        },
                    ));
                }
                (_, TensorKind::Norm) => {
                    let t = self.get(id);
                    out.push((
                        id.hf_name(),
                        RawTensor {
                            dtype: safetensors::Dtype::F32,
                            shape: t.shape.clone(),
                            data: bf16_to_f32_bytes(&t.data),
                        },
                    ));
                }
                _ => out.push((id.hf_name(), self.get(id).raw())),
            }
        }
        out
    }

    /// Writes a complete checkpoint folder (config, generation config, weights) into `dir`.
    pub fn write(&self, dir: &Path, layout: WriteLayout) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        match layout {
            WriteLayout::HfMxfp4 { shards } => {
                self.write_hf_configs(dir)?;
                write_safetensors(dir, self.hf_tensors(), shards)
            }
            WriteLayout::Original => {
                write_json(&dir.join(CONFIG), &original_config_json(&self.config))?;
                write_safetensors(dir, self.original_tensors(), 1)
            }
            WriteLayout::Both => {
                self.write_hf_configs(dir)?;
                let mut all = self.hf_tensors();
                all.extend(self.original_tensors());
                write_safetensors(dir, all, 1)
            }
            WriteLayout::HfBf16 => {
                self.write_hf_configs(dir)?;
                write_safetensors(dir, self.hf_bf16_tensors(), 1)
            }
            WriteLayout::Hub => {
                self.write(dir, WriteLayout::HfMxfp4 { shards: 2 })?;
                self.write(&dir.join("original"), WriteLayout::Original)
            }
        }
    }

    fn write_hf_configs(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(CONFIG), &hf_config_json(&self.config))?;
        write_json(
            &dir.join(crate::checkpoint::loader::TOKENIZER),
            &tokenizer_json(self.config.vocab_size),
        )?;
        if !self.config.eos_token_ids.is_empty() {
            write_json(
                &dir.join(GENERATION_CONFIG),
                &json!({ "eos_token_id": self.config.eos_token_ids }),
            )?;
        }
        Ok(())
    }
}

impl WeightSource for WeightSet {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn tensor(&self, id: TensorId) -> Result<Tensor<'_>> {
        let t = self.tensors.get(&id).ok_or_else(|| Error::Checkpoint {
            path: "synthetic".into(),
            message: format!("no tensor {}", id.hf_name()),
        })?;
        Ok(Tensor {
            id,
            source: "synthetic".into(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: Cow::Borrowed(&t.data),
        })
    }
}

/// `n` bytes of canonical MXFP4 blocks: per 16-byte block one element of magnitude code 6 or
/// 7 (4 or 6), every other element at most that, and never the -0 nibble.
fn canonical_blocks(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n / mxfp4::BLOCK_BYTES {
        let top = 6 + rng.below(2) as u8;
        let at = rng.below(mxfp4::BLOCK as u64) as usize;
        let mut nibbles = [0u8; mxfp4::BLOCK];
        for (k, nib) in nibbles.iter_mut().enumerate() {
            let code = if k == at {
                top
            } else {
                rng.below(top as u64 + 1) as u8
            };
            let sign = if code != 0 && rng.below(2) == 1 { 8 } else { 0 };
            *nib = code | sign;
        }
        out.extend(nibbles.chunks_exact(2).map(|p| p[0] | (p[1] << 4)));
    }
    out
}

/// A minimal byte-level BPE tokenizer.json: the 256 bytes (GPT-2's printable map), no merges,
/// then the harmony specials, all below `vocab_size` when it is at least 265 (else the specials
/// are left out).
pub fn tokenizer_json(vocab_size: usize) -> Value {
    let added = if vocab_size >= 256 + HARMONY_SPECIALS.len() {
        added_specials(256, HARMONY_SPECIALS)
    } else {
        Vec::new()
    };
    bpe_json(byte_vocab(), Vec::new(), added, None)
}

/// config.json in Hugging Face naming.
pub fn hf_config_json(c: &ModelConfig) -> Value {
    let layer_types: Vec<&str> = c
        .layer_types
        .iter()
        .map(|t| match t {
            LayerType::Sliding => "sliding_attention",
            LayerType::Full => "full_attention",
        })
        .collect();
    json!({
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "num_hidden_layers": c.num_hidden_layers,
        "num_local_experts": c.num_experts,
        "num_experts_per_tok": c.experts_per_token,
        "experts_per_token": c.experts_per_token,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "head_dim": c.head_dim,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "vocab_size": c.vocab_size,
        "sliding_window": c.sliding_window,
        "layer_types": layer_types,
        "rms_norm_eps": c.rms_norm_eps,
        "swiglu_limit": c.swiglu_limit,
        "rope_theta": c.rope_theta,
        "rope_scaling": {
            "rope_type": "yarn",
            "factor": c.rope_scaling.factor,
            "beta_fast": c.rope_scaling.beta_fast,
            "beta_slow": c.rope_scaling.beta_slow,
            "original_max_position_embeddings": c.rope_scaling.original_max_position_embeddings,
            "truncate": c.rope_scaling.truncate,
        },
        "initial_context_length": c.rope_scaling.original_max_position_embeddings,
        "max_position_embeddings": c.max_position_embeddings,
        "attention_bias": true,
        "tie_word_embeddings": false,
        "eos_token_id": c.eos_token_ids.first(),
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": [
                "model.layers.*.self_attn", "model.layers.*.mlp.router",
                "model.embed_tokens", "lm_head"
            ]
        }
    })
}

/// original/config.json in OpenAI's naming (no eps, no eos, no layer types).
pub fn original_config_json(c: &ModelConfig) -> Value {
    json!({
        "num_hidden_layers": c.num_hidden_layers,
        "num_experts": c.num_experts,
        "experts_per_token": c.experts_per_token,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "swiglu_limit": c.swiglu_limit,
        "head_dim": c.head_dim,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "sliding_window": c.sliding_window,
        "initial_context_length": c.rope_scaling.original_max_position_embeddings,
        "rope_theta": c.rope_theta,
        "rope_scaling_factor": c.rope_scaling.factor,
        "rope_ntk_alpha": c.rope_scaling.beta_slow,
        "rope_ntk_beta": c.rope_scaling.beta_fast,
    })
}

pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `tensors` into `shards` files: model.safetensors for one; for more, the hub's
/// model-0000k-of-0000(n-1).safetensors names plus model.safetensors.index.json.
pub fn write_safetensors(
    dir: &Path,
    tensors: Vec<(String, RawTensor)>,
    shards: usize,
) -> Result<()> {
    let shards = shards.max(1);
    let st_err = |path: &Path, e: safetensors::SafeTensorError| Error::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if shards == 1 {
        let path = dir.join("model.safetensors");
        return safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n, t)), None, &path)
            .map_err(|e| st_err(&path, e));
    }
    let mut files: Vec<Vec<(String, RawTensor)>> = vec![Vec::new(); shards];
    let per = tensors.len().div_ceil(shards);
    for (i, t) in tensors.into_iter().enumerate() {
        files[(i / per.max(1)).min(shards - 1)].push(t);
    }
    let mut weight_map = serde_json::Map::new();
    for (k, list) in files.iter().enumerate() {
        let name = format!("model-{k:05}-of-{:05}.safetensors", shards - 1);
        let path = dir.join(&name);
        safetensors::serialize_to_file(list.iter().map(|(n, t)| (n, t)), None, &path)
            .map_err(|e| st_err(&path, e))?;
        for (n, _) in list {
            weight_map.insert(n.clone(), Value::String(name.clone()));
        }
    }
    write_json(
        &dir.join(INDEX),
        &json!({ "metadata": {}, "weight_map": weight_map }),
    )
}

/// Tiling unit of [`write_synthetic`]'s weight patterns: large enough that no two nearby rows
/// of a matrix repeat, small enough to make per tensor.
const PATTERN_BYTES: usize = 1 << 20;

/// Bytes of `len` for a tensor of `kind`, tiled from a seeded 1 MiB pattern: plausible values
/// (BF16 weights within +-0.03, norms 1, biases and sinks 0, MXFP4 scales 2^-8..2^-6), so a
/// model generates from them without NaN.
fn synthetic_pattern(kind: TensorKind, dtype: DType, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let n = PATTERN_BYTES;
    match (kind, dtype) {
        (TensorKind::ExpertBlocks, _) => (0..n).map(|_| rng.below(256) as u8).collect(),
        (TensorKind::ExpertScales, _) => (0..n).map(|_| 119 + rng.below(3) as u8).collect(),
        (TensorKind::Matrix, _) => bf16_bytes((0..n / 2).map(|_| rng.sym(0.03))),
        (TensorKind::Norm, DType::F32) => (0..n / 4).flat_map(|_| 1f32.to_le_bytes()).collect(),
        (TensorKind::Norm, _) => bf16_bytes((0..n / 2).map(|_| 1.0)),
        _ => vec![0; n],
    }
}

/// Writes a checkpoint of `c`'s exact shapes (Hugging Face MXFP4 layout, shards of about
/// `shard_bytes`, index, config, generation config, tokenizer.json) with pattern weights,
/// streamed to disk: a gpt-oss-20b-shaped folder (13.8 GB) for load-time measurements without
/// a download, in the time the disk takes to write it. Returns the bytes of weights written.
pub fn write_synthetic(dir: &Path, c: &ModelConfig, shard_bytes: u64) -> Result<u64> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(&dir.join(CONFIG), &hf_config_json(c))?;
    if !c.eos_token_ids.is_empty() {
        write_json(
            &dir.join(GENERATION_CONFIG),
            &json!({ "eos_token_id": c.eos_token_ids }),
        )?;
    }
    write_json(
        &dir.join(crate::checkpoint::loader::TOKENIZER),
        &tokenizer_json(c.vocab_size),
    )?;

    struct Spec {
        name: String,
        kind: TensorKind,
        dtype: DType,
        shape: Vec<usize>,
        bytes: u64,
    }
    let specs: Vec<Spec> = TensorId::all(c.num_hidden_layers)
        .into_iter()
        .map(|id| {
            let kind = id.kind();
            let dtype = kind.allowed_dtypes().first().copied().unwrap_or(DType::U8);
            let shape = canonical_shape(c, id);
            let bytes = element_count(&shape).unwrap_or(0) as u64 * dtype.size() as u64;
            Spec {
                name: id.hf_name(),
                kind,
                dtype,
                shape,
                bytes,
            }
        })
        .collect();
    // Consecutive tensors per shard, a new shard once one passes shard_bytes.
    let mut shards: Vec<Vec<&Spec>> = vec![Vec::new()];
    let mut in_shard = 0u64;
    for s in &specs {
        if in_shard >= shard_bytes.max(1) {
            shards.push(Vec::new());
            in_shard = 0;
        }
        in_shard += s.bytes;
        if let Some(last) = shards.last_mut() {
            last.push(s);
        }
    }
    let n = shards.len();
    let names: Vec<String> = (0..n)
        .map(|k| format!("model-{k:05}-of-{:05}.safetensors", n - 1))
        .collect();
    let write_shard = |path: &Path, list: &[&Spec]| -> Result<u64> {
        let io = |e| Error::io(path, e);
        let mut header = serde_json::Map::new();
        let mut off = 0u64;
        for s in list {
            header.insert(
                s.name.clone(),
                json!({"dtype": s.dtype.name(), "shape": s.shape, "data_offsets": [off, off + s.bytes]}),
            );
            off += s.bytes;
        }
        let mut text = Value::Object(header).to_string();
        // The data section starts 8-byte aligned, as the safetensors serializer leaves it.
        while (text.len() + N_HEADER_LEN) % 8 != 0 {
            text.push(' ');
        }
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(8 << 20, file);
        out.write_all(&(text.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        for s in list {
            let seed = s.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            let pattern = synthetic_pattern(s.kind, s.dtype, seed);
            let mut left = s.bytes as usize;
            while left > 0 {
                let k = left.min(pattern.len());
                out.write_all(&pattern[..k]).map_err(io)?;
                left -= k;
            }
        }
        out.flush().map_err(io)?;
        Ok(off)
    };
    // One thread per shard: pattern making and the page cache's copy overlap the disk.
    let results: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .zip(&names)
            .map(|(list, name)| {
                let path = dir.join(name);
                let write_shard = &write_shard;
                scope.spawn(move || write_shard(&path, list))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Checkpoint {
                        path: dir.to_path_buf(),
                        message: "a shard writer panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut total = 0;
    for r in results {
        total += r?;
    }
    let mut weight_map = serde_json::Map::new();
    for (list, name) in shards.iter().zip(&names) {
        for s in list {
            weight_map.insert(s.name.clone(), Value::String(name.clone()));
        }
    }
    write_json(
        &dir.join(INDEX),
        &json!({ "metadata": { "total_size": total }, "weight_map": weight_map }),
    )?;
    Ok(total)
}

const N_HEADER_LEN: usize = 8;
