//! What `oss-wgpu inspect` reports about a checkpoint folder: layout, tensors, parameter
//! counts, bytes a decode step reads, and the GPU memory a load would take. Everything here
//! works without a GPU.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::checkpoint::layout::{Layout, Storage};
use crate::checkpoint::loader::Checkpoint;
use crate::checkpoint::loader::TOKENIZER;
use crate::checkpoint::names::{name_pattern, ExpertMatrix, LayerTensor, TensorId, TensorKind};
use crate::checkpoint::tensor::{canonical_shape, element_count, WeightSource};
use crate::checkpoint::values::{check_values as check_values_of, ValueReport};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{KvChoice, Tuning};
use crate::model::forward::DEFAULT_CHUNK;
use crate::model::kv_cache;
use crate::model::memory::MemoryPlan;
use crate::model::weights::plan;
use crate::tokenizer::Tokenizer;

/// Bytes per cached K or V element in the report: the default KV cache's (f32).
const KV_ELEMENT_BYTES: u64 = KvChoice::F32.element_bytes();

/// The binding limit `inspect` plans the split for when none is given: WebGPU's default, and
/// lavapipe's (the smallest common desktop limit).
pub const DEFAULT_MAX_BINDING: u64 = 128 << 20;

#[derive(Clone, Debug, Serialize)]
pub struct KeyPrefix {
    /// The first component of the names, with its dot ("model.", "block.").
    pub prefix: String,
    pub tensors: usize,
    /// False for the `block.*` keys of a folder that also has `model.*`.
    pub used: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub tensors: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DtypeSummary {
    pub dtype: String,
    pub tensors: usize,
    pub bytes: u64,
}

/// Tensors of the same role in every layer, collapsed into one line.
#[derive(Clone, Debug, Serialize)]
pub struct TensorGroup {
    /// Canonical (Hugging Face) name, layer index as `*`.
    pub name: String,
    /// Stored name, layer index as `*`, with how it is taken from there.
    pub stored: String,
    pub stored_dtype: String,
    pub stored_shape: Vec<usize>,
    /// Canonical shape.
    pub shape: Vec<usize>,
    pub count: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ParamCounts {
    /// Every weight element (MXFP4 elements count one each; scales are not parameters).
    pub total: u64,
    /// Per token: all but the embedding table and the (E - k) unused experts of each layer;
    /// lm_head counts.
    pub active: u64,
    pub embedding: u64,
    /// All experts' weights and biases, every layer.
    pub experts: u64,
}

/// Bytes one decode token reads from the weights, as they are on the GPU (BF16 matrices,
/// MXFP4 blocks and scales, f32 gains, biases and sinks).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DecodeBytes {
    /// q, k, v, o with biases, and sinks, every layer.
    pub attention: u64,
    pub router: u64,
    pub norms: u64,
    /// k experts' blocks, scales and biases, gate_up and down, every layer.
    pub experts: u64,
    pub lm_head: u64,
    pub embedding_row: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GpuMemory {
    /// The binding limit the split was planned for.
    pub max_binding: u64,
    pub weights: u64,
    /// Tensors split into several buffers, with the number of parts.
    pub split_tensors: Vec<(String, usize)>,
    pub ctx: usize,
    pub kv_positions_full: usize,
    pub kv_positions_sliding: usize,
    /// K and V, f32 (the default), every layer.
    pub kv_cache: u64,
    /// The RoPE table and the activations of decode, prefill and the sampler.
    pub activations: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    pub dir: PathBuf,
    /// Where the weights were read from (dir, or dir/original).
    pub root: PathBuf,
    pub layout: Layout,
    pub layout_description: String,
    pub both_key_sets: bool,
    pub key_prefixes: Vec<KeyPrefix>,
    /// "fused" (original attn.qkv, split by rows on load) or "split".
    pub qkv: String,
    /// "MXFP4" or "BF16 -> MXFP4".
    pub experts: String,
    pub files: Vec<FileSummary>,
    /// Stored tensors the model uses, by dtype.
    pub dtypes: Vec<DtypeSummary>,
    pub tensors: Vec<TensorGroup>,
    pub config: ModelConfig,
    pub tokenizer: Option<PathBuf>,
    pub params: ParamCounts,
    pub decode_bytes: DecodeBytes,
    pub gpu: GpuMemory,
    pub notes: Vec<String>,
    /// The value scan, when asked for (`--check-values`).
    pub values: Option<ValueReport>,
    /// False only when the value scan found issues: a checkpoint that fails any other check
    /// gives an error instead of a report.
    pub valid: bool,
}

/// Opens and validates `dir` and reports on it; the GPU figures assume a binding limit of
/// `max_binding` bytes and a context of `ctx` tokens.
pub fn inspect(dir: &std::path::Path, ctx: usize, max_binding: u64) -> Result<InspectReport> {
    inspect_with(dir, Some(ctx), max_binding, None)
}

/// The context `inspect` assumes when none is given: generate's default.
pub const DEFAULT_CTX: usize = 8192;

/// As [`inspect`] (`ctx` None: [`DEFAULT_CTX`] or the model's maximum); with `check_values = Some(progress)` also scans every tensor's values
/// ([`check_values`]), and a report with issues is not valid.
pub fn inspect_with(
    dir: &std::path::Path,
    ctx: Option<usize>,
    max_binding: u64,
    check_values: Option<bool>,
) -> Result<InspectReport> {
    let ck = Checkpoint::open(dir)?;
    let c = ck.config().clone();
    let ctx = ctx.unwrap_or(DEFAULT_CTX.min(c.max_position_embeddings));
    check_tokenizer(&ck, &c)?;
    crate::model::fit::check_ctx(&c, ctx)?;
    let shards = ck.shards();
    let ids = TensorId::all(c.num_hidden_layers);

    let used: HashSet<&str> = ids
        .iter()
        .filter_map(|&id| ck.stored(id).map(|e| e.name.as_str()))
        .collect();
    let mut prefixes: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for e in shards.entries() {
        let prefix = match e.name.split_once('.') {
            Some((p, _)) => format!("{p}."),
            None => e.name.clone(),
        };
        let slot = prefixes.entry(prefix).or_default();
        slot.0 += 1;
        slot.1 |= used.contains(e.name.as_str());
    }
    let key_prefixes = prefixes
        .into_iter()
        .map(|(prefix, (tensors, used))| KeyPrefix {
            prefix,
            tensors,
            used,
        })
        .collect();

    let mut files: Vec<FileSummary> = shards
        .files
        .iter()
        .map(|f| FileSummary {
            path: f.path.clone(),
            bytes: f.len,
            tensors: 0,
        })
        .collect();
    for e in shards.entries() {
        if let Some(f) = files.get_mut(e.file) {
            f.tensors += 1;
        }
    }

    let mut dtypes: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut tensors: Vec<TensorGroup> = Vec::new();
    for &id in &ids {
        let (Some(e), Some(storage)) = (ck.stored(id), ck.storage(id)) else {
            continue;
        };
        if seen.insert(e.name.clone()) {
            let d = dtypes.entry(format!("{:?}", e.dtype)).or_default();
            d.0 += 1;
            d.1 += e.bytes() as u64;
        }
        let how = match storage {
            Storage::Whole => String::new(),
            Storage::Rows { first, rows } => format!(" rows {first}..{}", first + rows),
            Storage::Dense { .. } => " (transposed, quantized)".into(),
        };
        let group = TensorGroup {
            name: name_pattern(&id.hf_name()),
            stored: format!("{}{how}", name_pattern(&e.name)),
            stored_dtype: format!("{:?}", e.dtype),
            stored_shape: e.shape.clone(),
            shape: canonical_shape(&c, id),
            count: 1,
        };
        match tensors.iter_mut().find(|g| {
            g.name == group.name
                && g.stored == group.stored
                && g.stored_dtype == group.stored_dtype
                && g.stored_shape == group.stored_shape
        }) {
            Some(g) => g.count += 1,
            None => tensors.push(group),
        }
    }
    let dtypes = dtypes
        .into_iter()
        .map(|(dtype, (tensors, bytes))| DtypeSummary {
            dtype,
            tensors,
            bytes,
        })
        .collect();

    let plans = plan(&c, max_binding)?;
    let memory = MemoryPlan::new(
        &c,
        ctx,
        DEFAULT_CHUNK,
        KV_ELEMENT_BYTES,
        max_binding,
        &Tuning::default(),
        // The default path, as the f32 cache is: prefill without cooperative matrices.
        false,
    )?;
    let split_tensors = plans
        .iter()
        .filter(|p| p.parts.len() > 1)
        .map(|p| (p.label.clone(), p.parts.len()))
        .collect();
    let sliding = (0..c.num_hidden_layers).find(|&l| c.is_sliding(l));
    let full = (0..c.num_hidden_layers).find(|&l| !c.is_sliding(l));
    let gpu = GpuMemory {
        max_binding,
        weights: memory.weights,
        split_tensors,
        ctx,
        kv_positions_full: full.map_or(0, |l| kv_cache::capacity(&c, l, ctx, DEFAULT_CHUNK)),
        kv_positions_sliding: sliding.map_or(0, |l| kv_cache::capacity(&c, l, ctx, DEFAULT_CHUNK)),
        kv_cache: memory.kv_cache,
        activations: memory.activations,
        total: memory.total(),
    };

    let values = check_values.map(|progress| check_values_of(&ck, 0, progress));
    let valid = values.as_ref().is_none_or(|v| v.issues.is_empty());
    Ok(InspectReport {
        values,
        dir: ck.dir.clone(),
        root: ck.root.clone(),
        layout: ck.layout,
        layout_description: ck.layout.describe().to_string(),
        both_key_sets: ck.both_key_sets,
        key_prefixes,
        qkv: if ck.layout == Layout::Original {
            "fused (attn.qkv, split by rows on load)".into()
        } else {
            "split (q_proj, k_proj, v_proj)".into()
        },
        experts: if ck.layout == Layout::HfBf16 {
            "BF16 -> MXFP4".into()
        } else {
            "MXFP4".into()
        },
        files,
        dtypes,
        tensors,
        tokenizer: ck.tokenizer_path(),
        params: param_counts(&c),
        decode_bytes: decode_bytes(&c),
        gpu,
        notes: ck.notes.clone(),
        config: c,
        valid,
    })
}

/// A checkpoint is only usable for text prompts with a tokenizer that loads and whose ids all
/// fall inside the model's vocabulary; `generate` refuses anything else, so `inspect` does too.
fn check_tokenizer(ck: &Checkpoint, c: &ModelConfig) -> Result<()> {
    let Some(path) = ck.tokenizer_path() else {
        return Err(Error::Checkpoint {
            path: ck.dir.clone(),
            message: format!(
                "no {TOKENIZER} here or in the parent folder (generate needs one for text                  prompts; --prompt-ids works without)"
            ),
        });
    };
    let t = Tokenizer::from_file(&path)?;
    match t.max_id() {
        None => {
            return Err(Error::Tokenizer {
                path,
                message: "has no tokens".into(),
            })
        }
        Some(max) if max as usize >= c.vocab_size => {
            return Err(Error::Tokenizer {
                path,
                message: format!(
                    "has token ids up to {max}, outside the model's vocabulary of {} \
                     (config.json vocab_size): it does not belong to this checkpoint",
                    c.vocab_size
                ),
            })
        }
        Some(_) => {}
    }
    Ok(())
}

/// Logical elements of `id` (an MXFP4 element counts one; scales count none).
fn params_of(c: &ModelConfig, id: TensorId) -> u64 {
    let n = element_count(&canonical_shape(c, id)).unwrap_or(0) as u64;
    match id.kind() {
        TensorKind::ExpertBlocks => n * 2,
        TensorKind::ExpertScales => 0,
        _ => n,
    }
}

pub fn param_counts(c: &ModelConfig) -> ParamCounts {
    let mut total = 0;
    let mut experts = 0;
    for id in TensorId::all(c.num_hidden_layers) {
        let n = params_of(c, id);
        total += n;
        if let TensorId::Layer(_, t) = id {
            if t.expert_matrix().is_some() {
                experts += n;
            }
        }
    }
    let embedding = params_of(c, TensorId::Embedding);
    let unused = experts / c.num_experts.max(1) as u64
        * (c.num_experts - c.experts_per_token.min(c.num_experts)) as u64;
    ParamCounts {
        total,
        active: total - embedding - unused,
        embedding,
        experts,
    }
}

/// GPU bytes of `id` (BF16 matrices and MXFP4 as stored, vectors as f32).
fn gpu_bytes_of(c: &ModelConfig, id: TensorId) -> u64 {
    let n = element_count(&canonical_shape(c, id)).unwrap_or(0) as u64;
    match id.kind() {
        TensorKind::Matrix => n * 2,
        TensorKind::ExpertBlocks | TensorKind::ExpertScales => n,
        TensorKind::Norm | TensorKind::Bias | TensorKind::Sinks | TensorKind::ExpertBias => n * 4,
    }
}

pub fn decode_bytes(c: &ModelConfig) -> DecodeBytes {
    use LayerTensor::*;
    let (mut attention, mut router, mut norms, mut experts) = (0, 0, 0, 0);
    for l in 0..c.num_hidden_layers {
        let b = |t| gpu_bytes_of(c, TensorId::Layer(l, t));
        attention += [
            QWeight, QBias, KWeight, KBias, VWeight, VBias, OWeight, OBias, Sinks,
        ]
        .into_iter()
        .map(b)
        .sum::<u64>();
        router += b(RouterWeight) + b(RouterBias);
        norms += b(AttnNorm) + b(MlpNorm);
        let all: u64 = ExpertMatrix::ALL
            .iter()
            .flat_map(|m| m.tensors())
            .map(b)
            .sum();
        experts += all / c.num_experts.max(1) as u64 * c.experts_per_token as u64;
    }
    norms += gpu_bytes_of(c, TensorId::FinalNorm);
    let lm_head = gpu_bytes_of(c, TensorId::LmHead);
    let embedding_row = c.hidden_size as u64 * 2;
    DecodeBytes {
        attention,
        router,
        norms,
        experts,
        lm_head,
        embedding_row,
        total: attention + router + norms + experts + lm_head + embedding_row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerType;

    /// config.json of openai/gpt-oss-20b (https://huggingface.co/openai/gpt-oss-20b/blob/main/config.json).
    const GPT_OSS_20B: &str = r#"{
      "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
      "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
      "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
      "intermediate_size": 2880,
      "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention",
        "sliding_attention", "full_attention", "sliding_attention", "full_attention"],
      "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
      "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
      "num_local_experts": 32, "output_router_logits": false, "pad_token_id": 199999,
      "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn",
        "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
      "rms_norm_eps": 1e-05,
      "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
        "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
      "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128,
      "swiglu_limit": 7.0, "tie_word_embeddings": false, "transformers_version": "4.55.0.dev0",
      "use_cache": true, "vocab_size": 201088
    }"#;

    fn config_20b() -> ModelConfig {
        ModelConfig::from_json_str(GPT_OSS_20B, std::path::Path::new("config.json")).unwrap()
    }

    #[test]
    fn the_presets_are_the_published_configs() {
        let want = ModelConfig {
            eos_token_ids: vec![],
            ..config_20b()
        };
        assert_eq!(ModelConfig::gpt_oss_20b(), want);
        assert_eq!(
            ModelConfig::gpt_oss_120b(),
            ModelConfig {
                num_hidden_layers: 36,
                num_experts: 128,
                layer_types: LayerType::alternating(36),
                ..want
            }
        );
    }

    #[test]
    fn gpt_oss_20b_parameter_counts() {
        let p = param_counts(&config_20b());
        assert_eq!(p.total, 20_914_757_184);
        assert_eq!(p.active, 3_608_307_264);
    }

    #[test]
    fn gpt_oss_120b_parameter_counts() {
        let p = param_counts(&ModelConfig::gpt_oss_120b());
        assert_eq!(p.total, 116_829_156_672);
        assert_eq!(p.active, 5_132_849_472);
    }

    #[test]
    fn gpt_oss_20b_decode_bytes_match_the_design_estimate() {
        // design.md: attention 1.27 GB + 4 experts 1.27 GB + lm_head 1.16 GB = 3.70 GB; with
        // router, norms and one embedding row the exact sum is 3.71 GB.
        let d = decode_bytes(&config_20b());
        // Per layer: q, k, v, o BF16 + their f32 biases + 64 f32 sinks.
        assert_eq!(
            d.attention,
            24 * ((5120 * 2880 + 2880 * 4096) * 2 + (5120 + 2880) * 4 + 64 * 4)
        );
        // Per layer, 4 experts: gate_up (5760 rows) and down (2880 rows), 1440 block bytes,
        // 90 scale bytes and one f32 bias per row.
        assert_eq!(d.experts, 24 * 4 * (5760 + 2880) * (1440 + 90 + 4));
        assert_eq!(d.lm_head, 201088 * 2880 * 2);
        assert_eq!(d.router, 24 * (32 * 2880 * 2 + 32 * 4));
        assert_eq!(d.norms, (2 * 24 + 1) * 2880 * 4);
        assert_eq!(d.embedding_row, 2880 * 2);
        assert_eq!(d.total, 3_710_418_816);
        let gb = |b: u64| (b as f64 / 1e7).round() / 100.0;
        assert_eq!(
            (gb(d.attention), gb(d.experts), gb(d.lm_head)),
            (1.27, 1.27, 1.16)
        );
    }

    #[test]
    fn gpt_oss_20b_kv_cache() {
        let c = config_20b();
        // 12 full layers x 8192 positions + 12 sliding x (128 + one prefill step), 8 KV heads x
        // 64, K and V, 2 bytes.
        let want = (12 * 8192 + 12 * (128 + DEFAULT_CHUNK)) as u64 * 512 * 2 * 2;
        assert_eq!(kv_cache::bytes(&c, 8192, DEFAULT_CHUNK, 2), want);
        // A context shorter than the ring needs no more than the context.
        assert_eq!(
            kv_cache::bytes(&c, 100, DEFAULT_CHUNK, 2),
            24 * 100 * 512 * 4
        );
    }
}
