//! ModelConfig: every number of the model, from config.json in either naming (Hugging Face or
//! OpenAI's original), plus stop tokens from generation_config.json. Nothing is hard-coded
//! from gpt-oss-20b: tests use tiny configs with other values.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub const CONFIG: &str = "config.json";
pub const GENERATION_CONFIG: &str = "generation_config.json";

/// rms_norm_eps where the config has none: the original config never has one, and OpenAI's
/// RMSNorm hard-codes 1e-5.
pub const DEFAULT_RMS_NORM_EPS: f32 = 1e-5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LayerType {
    /// Attends to the last `sliding_window` positions, itself included.
    Sliding,
    /// Attends to the whole causal prefix.
    Full,
}

/// YaRN RoPE scaling (NTK-by-parts) parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RopeScaling {
    pub factor: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    pub original_max_position_embeddings: usize,
    /// gpt-oss uses false: the ramp bounds are not rounded.
    pub truncate: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub num_hidden_layers: usize,
    pub num_experts: usize,
    pub experts_per_token: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub head_dim: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub vocab_size: usize,
    pub sliding_window: usize,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    pub rms_norm_eps: f32,
    pub swiglu_limit: f32,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    /// Token ids that end generation (generation_config.json when present, else config.json's
    /// eos_token_id).
    pub eos_token_ids: Vec<u32>,
}

/// The values both reference config classes fall back to where config.json has none
/// (`ModelConfig` in https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py and
/// `GptOssConfig` in transformers' models/gpt_oss/configuration_gpt_oss.py); gpt-oss-20b and
/// -120b ship with them.
pub const DEFAULT_SLIDING_WINDOW: usize = 128;
pub const DEFAULT_SWIGLU_LIMIT: f32 = 7.0;
pub const DEFAULT_ROPE_THETA: f64 = 150000.0;
pub const DEFAULT_MAX_POSITION_EMBEDDINGS: usize = 131072;

impl LayerType {
    /// The gpt-oss pattern: even layer index slides, odd attends to everything.
    pub fn alternating(layers: usize) -> Vec<LayerType> {
        (0..layers)
            .map(|i| {
                if i % 2 == 0 {
                    LayerType::Sliding
                } else {
                    LayerType::Full
                }
            })
            .collect()
    }
}

impl RopeScaling {
    /// YaRN as gpt-oss is trained: 4096 positions stretched 32 times.
    pub const GPT_OSS: RopeScaling = RopeScaling {
        factor: 32.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        original_max_position_embeddings: 4096,
        truncate: false,
    };
}

impl ModelConfig {
    /// openai/gpt-oss-20b's config.json, less its stop tokens (a preset has no
    /// generation_config.json; `--synthetic` never stops early). Tests start tiny configs from
    /// it and change the sizes.
    pub fn gpt_oss_20b() -> ModelConfig {
        ModelConfig::gpt_oss(24, 32)
    }

    /// openai/gpt-oss-120b's config.json: gpt-oss-20b with more layers and experts.
    pub fn gpt_oss_120b() -> ModelConfig {
        ModelConfig::gpt_oss(36, 128)
    }

    fn gpt_oss(layers: usize, experts: usize) -> ModelConfig {
        ModelConfig {
            num_hidden_layers: layers,
            num_experts: experts,
            experts_per_token: 4,
            hidden_size: 2880,
            intermediate_size: 2880,
            head_dim: 64,
            num_attention_heads: 64,
            num_key_value_heads: 8,
            vocab_size: 201088,
            sliding_window: DEFAULT_SLIDING_WINDOW,
            layer_types: LayerType::alternating(layers),
            rms_norm_eps: DEFAULT_RMS_NORM_EPS,
            swiglu_limit: DEFAULT_SWIGLU_LIMIT,
            rope_theta: DEFAULT_ROPE_THETA,
            rope_scaling: RopeScaling::GPT_OSS,
            max_position_embeddings: DEFAULT_MAX_POSITION_EMBEDDINGS,
            eos_token_ids: vec![],
        }
    }

    /// Reads `dir/config.json` (either naming) and, when present, `dir/generation_config.json`
    /// for the stop tokens.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let gen = dir.join(GENERATION_CONFIG);
        Self::from_files(&dir.join(CONFIG), gen.exists().then_some(gen.as_path()))
    }

    /// Reads `config` and, if given, the generation config that overrides its stop tokens.
    pub fn from_files(config: &Path, generation_config: Option<&Path>) -> Result<Self> {
        let text = read_text(config)?;
        let mut cfg = Self::from_json_str(&text, config)?;
        if let Some(gen) = generation_config {
            let text = read_text(gen)?;
            if let Some(ids) = generation_eos(&text, gen)? {
                cfg.eos_token_ids = ids;
            }
        }
        Ok(cfg)
    }

    /// Parses and validates a config.json in either naming; `path` only names it in errors.
    /// Stop tokens come from its `eos_token_id` (empty when absent).
    pub fn from_json_str(json: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let obj = value.as_object().ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: format!("expected a JSON object, found {}", kind(&value)),
        })?;
        let cfg = Fields { obj, path }.parse()?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the invariants the loader and the kernels rely on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |message: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message,
            })
        };
        let sizes = [
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_experts", self.num_experts),
            ("experts_per_token", self.experts_per_token),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("head_dim", self.head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("vocab_size", self.vocab_size),
            ("sliding_window", self.sliding_window),
            ("max_position_embeddings", self.max_position_embeddings),
            (
                "original_max_position_embeddings",
                self.rope_scaling.original_max_position_embeddings,
            ),
        ];
        for (name, v) in sizes {
            if v == 0 {
                return err(format!("{name}: expected a positive integer, got 0"));
            }
        }
        // MXFP4 blocks run along the input dimension of both expert matrices.
        for (name, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
        ] {
            if v % crate::checkpoint::mxfp4::BLOCK != 0 {
                return err(format!(
                    "{name}: expected a multiple of {} (one MXFP4 block), got {v}",
                    crate::checkpoint::mxfp4::BLOCK
                ));
            }
        }
        if self.head_dim % 2 != 0 {
            return err(format!(
                "head_dim: expected an even number (RoPE rotates pairs), got {}",
                self.head_dim
            ));
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return err(format!(
                "num_attention_heads: expected a multiple of num_key_value_heads ({}), got {}",
                self.num_key_value_heads, self.num_attention_heads
            ));
        }
        if self.experts_per_token > self.num_experts {
            return err(format!(
                "experts_per_token: expected at most num_experts ({}), got {}",
                self.num_experts, self.experts_per_token
            ));
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return err(format!(
                "layer_types: expected {} entries (num_hidden_layers), got {}",
                self.num_hidden_layers,
                self.layer_types.len()
            ));
        }
        // The largest tensors' byte counts must be computable: shapes are multiplied out
        // everywhere without overflow checks past this point.
        let products: [(&str, &[usize]); 5] = [
            (
                "vocab_size x hidden_size",
                &[self.vocab_size, self.hidden_size, 4],
            ),
            (
                "num_experts x 2 intermediate_size x hidden_size",
                &[
                    self.num_experts,
                    2,
                    self.intermediate_size,
                    self.hidden_size,
                    4,
                ],
            ),
            (
                "num_attention_heads x head_dim x hidden_size",
                &[self.num_attention_heads, self.head_dim, self.hidden_size, 4],
            ),
            (
                "num_hidden_layers x num_experts",
                &[self.num_hidden_layers, self.num_experts, 4],
            ),
            // The KV cache at the full context, f32, K and V, every layer.
            (
                "num_hidden_layers x max_position_embeddings x num_key_value_heads x head_dim",
                &[
                    self.num_hidden_layers,
                    self.max_position_embeddings,
                    self.num_key_value_heads,
                    self.head_dim,
                    2,
                    4,
                ],
            ),
        ];
        for (what, dims) in products {
            if dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                .is_none_or(|b| b > isize::MAX as u64)
            {
                return err(format!(
                    "{what}: the tensor this implies is too large to address"
                ));
            }
        }
        // Positions are u32 on the GPU, as are token ids.
        if self.max_position_embeddings > u32::MAX as usize {
            return err(format!(
                "max_position_embeddings: expected at most {}, got {}",
                u32::MAX,
                self.max_position_embeddings
            ));
        }
        if self.vocab_size > u32::MAX as usize {
            return err(format!(
                "vocab_size: expected at most {}, got {}",
                u32::MAX,
                self.vocab_size
            ));
        }
        let positive = [
            ("rms_norm_eps", self.rms_norm_eps as f64),
            ("swiglu_limit", self.swiglu_limit as f64),
            ("rope_theta", self.rope_theta),
            ("rope_scaling.factor", self.rope_scaling.factor),
            ("rope_scaling.beta_fast", self.rope_scaling.beta_fast),
            ("rope_scaling.beta_slow", self.rope_scaling.beta_slow),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return err(format!(
                    "{name}: expected a positive finite number, got {v}"
                ));
            }
        }
        Ok(())
    }

    /// Width of q (heads x head_dim); not hidden_size in gpt-oss.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    pub fn is_sliding(&self, layer: usize) -> bool {
        self.layer_types[layer] == LayerType::Sliding
    }
}

fn read_text(path: &Path) -> Result<String> {
    crate::fsutil::read_to_string(path)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `eos_token_id` as an int or a list of ints; `None` when absent or null.
fn eos_ids(v: Option<&Value>, field: &str, path: &Path) -> Result<Option<Vec<u32>>> {
    let bad = |v: &Value| Error::Config {
        path: path.to_path_buf(),
        message: format!("{field}: expected a token id or a list of token ids, got {v}"),
    };
    let id = |v: &Value| {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| bad(v))
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.iter().map(id).collect::<Result<_>>()?)),
        Some(v) => Ok(Some(vec![id(v)?])),
    }
}

fn generation_eos(json: &str, path: &Path) -> Result<Option<Vec<u32>>> {
    let value: Value = serde_json::from_str(json).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    eos_ids(value.get("eos_token_id"), "eos_token_id", path)
}

/// More layers than this is a corrupt config, not a model (gpt-oss-120b has 36).
const MAX_LAYERS: usize = 1 << 16;

type Obj = Map<String, Value>;

/// Typed access to config.json fields, with errors that name the field.
struct Fields<'a> {
    obj: &'a Obj,
    path: &'a Path,
}

impl Fields<'_> {
    fn err(&self, message: String) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// The first of `names` that is present and not null.
    fn find<'v>(&self, obj: &'v Obj, names: &[&str]) -> Option<(String, &'v Value)> {
        names.iter().find_map(|n| {
            obj.get(*n)
                .filter(|v| !v.is_null())
                .map(|v| (n.to_string(), v))
        })
    }

    /// The first of `names` present, converted by `convert`; an error names the field and
    /// what it should have been.
    fn typed_in<T>(
        &self,
        obj: &Obj,
        prefix: &str,
        names: &[&str],
        expected: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>> {
        let Some((name, v)) = self.find(obj, names) else {
            return Ok(None);
        };
        convert(v)
            .map(Some)
            .ok_or_else(|| self.err(format!("{prefix}{name}: expected {expected}, got {v}")))
    }

    fn usize_in(&self, obj: &Obj, prefix: &str, names: &[&str]) -> Result<Option<usize>> {
        // Some exporters write integral floats ("4096.0"); only those an f64 holds exactly
        // (below 2^53), since `as u64` would saturate 1e308 to u64::MAX.
        let integral = |v: &Value| {
            v.as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9_007_199_254_740_992.0)
                        .map(|f| f as u64)
                })
                .and_then(|x| usize::try_from(x).ok())
        };
        self.typed_in(obj, prefix, names, "a non-negative integer", integral)
    }

    fn f64_in(&self, obj: &Obj, prefix: &str, names: &[&str]) -> Result<Option<f64>> {
        self.typed_in(obj, prefix, names, "a number", Value::as_f64)
    }

    fn bool_in(&self, obj: &Obj, prefix: &str, names: &[&str]) -> Result<Option<bool>> {
        self.typed_in(obj, prefix, names, "true or false", Value::as_bool)
    }

    /// The first of `names` present; every other alias present must agree with it (the hub
    /// config carries both num_experts_per_tok and experts_per_token).
    fn required(&self, names: &[&str]) -> Result<usize> {
        let value = self.usize_in(self.obj, "", names)?;
        if let Some(v) = value {
            for alias in names {
                if let Some(other) = self.usize_in(self.obj, "", &[alias])? {
                    if other != v {
                        return Err(self.err(format!(
                            "{alias}: expected {v} (the value of {}), got {other}",
                            names[0]
                        )));
                    }
                }
            }
        }
        value.ok_or_else(|| {
            self.err(format!(
                "{}: required field is missing{}",
                names[0],
                if names.len() > 1 {
                    format!(" (also looked for {})", names[1..].join(", "))
                } else {
                    String::new()
                }
            ))
        })
    }

    fn parse(&self) -> Result<ModelConfig> {
        let obj = self.obj;
        let num_hidden_layers = self.required(&["num_hidden_layers"])?;
        // HF's attribute_map accepts num_experts too; the original names it so.
        let num_experts = self.required(&["num_local_experts", "num_experts"])?;
        let experts_per_token = self.required(&["num_experts_per_tok", "experts_per_token"])?;
        let hidden_size = self.required(&["hidden_size"])?;
        let intermediate_size = self.required(&["intermediate_size"])?;
        let head_dim = self.required(&["head_dim"])?;
        let num_attention_heads = self.required(&["num_attention_heads"])?;
        let num_key_value_heads = self.required(&["num_key_value_heads"])?;
        let vocab_size = self.required(&["vocab_size"])?;
        // The remaining defaults are those of both reference config classes.
        let sliding_window = self
            .usize_in(obj, "", &["sliding_window"])?
            .unwrap_or(DEFAULT_SLIDING_WINDOW);
        let rms_norm_eps = self
            .f64_in(obj, "", &["rms_norm_eps"])?
            .map_or(DEFAULT_RMS_NORM_EPS, |v| v as f32);
        let swiglu_limit = self
            .f64_in(obj, "", &["swiglu_limit"])?
            .map_or(DEFAULT_SWIGLU_LIMIT, |v| v as f32);

        let (rope_theta, rope_scaling, max_position_embeddings) = self.rope()?;
        let layer_types = self.layer_types(num_hidden_layers)?;
        let eos_token_ids =
            eos_ids(obj.get("eos_token_id"), "eos_token_id", self.path)?.unwrap_or_default();

        Ok(ModelConfig {
            num_hidden_layers,
            num_experts,
            experts_per_token,
            hidden_size,
            intermediate_size,
            head_dim,
            num_attention_heads,
            num_key_value_heads,
            vocab_size,
            sliding_window,
            layer_types,
            rms_norm_eps,
            swiglu_limit,
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            eos_token_ids,
        })
    }

    /// (rope_theta, YaRN parameters, max_position_embeddings) from `rope_scaling` (transformers
    /// v4), `rope_parameters` (v5, where rope_theta may sit inside) or the original's flat
    /// `rope_*` fields.
    fn rope(&self) -> Result<(f64, RopeScaling, usize)> {
        let obj = self.obj;
        let top_theta = self.f64_in(obj, "", &["rope_theta"])?;
        let initial = self.usize_in(obj, "", &["initial_context_length"])?;
        let nested = self.find(obj, &["rope_parameters", "rope_scaling"]);
        match nested {
            Some((name, v)) => {
                let r = v.as_object().ok_or_else(|| {
                    self.err(format!("{name}: expected an object, got {}", kind(v)))
                })?;
                let prefix = format!("{name}.");
                let rope_type = match self.find(r, &["rope_type", "type"]) {
                    None => "yarn".to_string(),
                    Some((field, v)) => v.as_str().map(str::to_string).ok_or_else(|| {
                        self.err(format!("{prefix}{field}: expected a string, got {v}"))
                    })?,
                };
                let d = RopeScaling::GPT_OSS;
                let theta = self
                    .f64_in(r, &prefix, &["rope_theta"])?
                    .or(top_theta)
                    .unwrap_or(DEFAULT_ROPE_THETA);
                let original_max = self
                    .usize_in(r, &prefix, &["original_max_position_embeddings"])?
                    .or(initial)
                    .unwrap_or(d.original_max_position_embeddings);
                let scaling = match rope_type.as_str() {
                    "yarn" => RopeScaling {
                        factor: self.f64_in(r, &prefix, &["factor"])?.unwrap_or(d.factor),
                        beta_fast: self
                            .f64_in(r, &prefix, &["beta_fast"])?
                            .unwrap_or(d.beta_fast),
                        beta_slow: self
                            .f64_in(r, &prefix, &["beta_slow"])?
                            .unwrap_or(d.beta_slow),
                        original_max_position_embeddings: original_max,
                        truncate: self
                            .bool_in(r, &prefix, &["truncate"])?
                            .unwrap_or(d.truncate),
                    },
                    // YaRN with factor 1 is plain RoPE: the ramp blends two equal frequencies
                    // and the attention factor is 0.1 ln 1 + 1 = 1.
                    "default" => RopeScaling {
                        factor: 1.0,
                        original_max_position_embeddings: original_max,
                        ..d
                    },
                    other => {
                        return Err(self.err(format!(
                            "{prefix}rope_type: expected \"yarn\" (or \"default\"), got \"{other}\""
                        )))
                    }
                };
                let max_pos = self
                    .usize_in(obj, "", &["max_position_embeddings"])?
                    .unwrap_or(DEFAULT_MAX_POSITION_EMBEDDINGS);
                Ok((theta, scaling, max_pos))
            }
            None => {
                // The original naming (`ModelConfig` in gpt_oss/torch/model.py), mapped as
                // transformers' convert_gpt_oss_weights_to_hf.py maps it.
                let d = RopeScaling::GPT_OSS;
                let factor = self
                    .f64_in(obj, "", &["rope_scaling_factor"])?
                    .unwrap_or(d.factor);
                let original_max = initial.unwrap_or(d.original_max_position_embeddings);
                let scaling = RopeScaling {
                    factor,
                    beta_fast: self
                        .f64_in(obj, "", &["rope_ntk_beta"])?
                        .unwrap_or(d.beta_fast),
                    beta_slow: self
                        .f64_in(obj, "", &["rope_ntk_alpha"])?
                        .unwrap_or(d.beta_slow),
                    original_max_position_embeddings: original_max,
                    truncate: d.truncate,
                };
                let max_pos = match self.usize_in(obj, "", &["max_position_embeddings"])? {
                    Some(m) => m,
                    None => {
                        let m = original_max as f64 * factor;
                        if !(m.is_finite() && m >= 1.0 && m <= usize::MAX as f64) {
                            return Err(self.err(format!(
                                "initial_context_length x rope_scaling_factor: expected a \
                                 positive position count, got {original_max} x {factor}"
                            )));
                        }
                        m as usize
                    }
                };
                Ok((top_theta.unwrap_or(DEFAULT_ROPE_THETA), scaling, max_pos))
            }
        }
    }

    fn layer_types(&self, layers: usize) -> Result<Vec<LayerType>> {
        // Validation comes later, but the default list is built now: refuse a count no model
        // has before allocating one entry per layer.
        if layers > MAX_LAYERS {
            return Err(self.err(format!(
                "num_hidden_layers: {layers} is more than the {MAX_LAYERS} any checkpoint could hold"
            )));
        }
        let Some((_, v)) = self.find(self.obj, &["layer_types"]) else {
            return Ok(LayerType::alternating(layers));
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.err(format!("layer_types: expected a list, got {}", kind(v))))?;
        list.iter()
            .enumerate()
            .map(|(i, t)| match t.as_str() {
                Some("sliding_attention") => Ok(LayerType::Sliding),
                Some("full_attention") => Ok(LayerType::Full),
                _ => Err(self.err(format!(
                    "layer_types[{i}]: expected \"sliding_attention\" or \"full_attention\", got {t}"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hf() -> Value {
        json!({
            "num_hidden_layers": 4, "num_local_experts": 8, "num_experts_per_tok": 2,
            "hidden_size": 64, "intermediate_size": 96, "head_dim": 16,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
            "sliding_window": 8, "rms_norm_eps": 1e-6, "swiglu_limit": 5.0,
            "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "yarn", "factor": 8.0, "beta_fast": 16.0,
                "beta_slow": 2.0, "original_max_position_embeddings": 512, "truncate": false},
            "max_position_embeddings": 4096, "eos_token_id": 7,
            "layer_types": ["full_attention", "sliding_attention", "full_attention",
                "sliding_attention"]
        })
    }

    fn parse(v: &Value) -> Result<ModelConfig> {
        ModelConfig::from_json_str(&v.to_string(), Path::new("x/config.json"))
    }

    fn message(v: &Value) -> String {
        match parse(v) {
            Err(Error::Config { message, .. }) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn huge_layer_counts_are_errors_not_allocations() {
        for n in [json!(1e308), json!(1e18), json!(18446744073709551615u64)] {
            let mut v = hf();
            let o = v.as_object_mut().unwrap();
            o.insert("num_hidden_layers".into(), n.clone());
            o.remove("layer_types");
            let m = message(&v);
            assert!(m.contains("num_hidden_layers"), "{n}: {m}");
        }
    }

    #[test]
    fn hf_naming() {
        let c = parse(&hf()).unwrap();
        assert_eq!(c.num_experts, 8);
        assert_eq!(c.experts_per_token, 2);
        assert_eq!(c.intermediate_size, 96);
        assert_eq!(c.rms_norm_eps, 1e-6);
        assert_eq!(c.swiglu_limit, 5.0);
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(
            c.rope_scaling,
            RopeScaling {
                factor: 8.0,
                beta_fast: 16.0,
                beta_slow: 2.0,
                original_max_position_embeddings: 512,
                truncate: false
            }
        );
        assert_eq!(c.max_position_embeddings, 4096);
        assert_eq!(c.eos_token_ids, vec![7]);
        // layer_types as given, not the default alternation.
        assert!(!c.is_sliding(0) && c.is_sliding(1));
    }

    #[test]
    fn hf_v5_rope_parameters_with_theta_inside() {
        let mut v = hf();
        let o = v.as_object_mut().unwrap();
        o.remove("rope_scaling");
        o.remove("rope_theta");
        o.insert(
            "rope_parameters".into(),
            json!({"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                   "beta_fast": 32.0, "beta_slow": 1.0, "truncate": true,
                   "original_max_position_embeddings": 4096}),
        );
        o.insert("experts_per_token".into(), json!(2));
        o.remove("num_experts_per_tok");
        let c = parse(&v).unwrap();
        assert_eq!(c.rope_theta, 150000.0);
        assert_eq!(c.rope_scaling.factor, 32.0);
        assert!(c.rope_scaling.truncate);
        assert_eq!(c.experts_per_token, 2);
    }

    #[test]
    fn original_naming() {
        let v = json!({
            "num_hidden_layers": 24, "num_experts": 32, "experts_per_token": 4,
            "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880,
            "swiglu_limit": 7.0, "head_dim": 64, "num_attention_heads": 64,
            "num_key_value_heads": 8, "sliding_window": 128, "initial_context_length": 4096,
            "rope_theta": 150000.0, "rope_scaling_factor": 32.0, "rope_ntk_alpha": 1.0,
            "rope_ntk_beta": 32.0
        });
        let c = parse(&v).unwrap();
        assert_eq!(c.num_experts, 32);
        assert_eq!(c.rope_scaling.beta_fast, 32.0);
        assert_eq!(c.rope_scaling.beta_slow, 1.0);
        assert_eq!(c.rope_scaling.original_max_position_embeddings, 4096);
        assert_eq!(c.max_position_embeddings, 131072);
        assert_eq!(c.rms_norm_eps, 1e-5);
        assert!(c.eos_token_ids.is_empty());
        // No layer_types: even layers slide.
        assert_eq!(c.layer_types.len(), 24);
        assert!(c.is_sliding(0) && !c.is_sliding(1) && c.is_sliding(22) && !c.is_sliding(23));

        // ntk_alpha and ntk_beta are beta_slow and beta_fast, not the other way round.
        let mut v = v;
        v["rope_ntk_alpha"] = json!(2.0);
        v["rope_ntk_beta"] = json!(16.0);
        v["initial_context_length"] = json!(1000);
        v["rope_scaling_factor"] = json!(4.0);
        let c = parse(&v).unwrap();
        assert_eq!(
            (c.rope_scaling.beta_slow, c.rope_scaling.beta_fast),
            (2.0, 16.0)
        );
        assert_eq!(c.max_position_embeddings, 4000);
    }

    #[test]
    fn stop_tokens_prefer_the_generation_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = hf();
        v["eos_token_id"] = json!([5, 6]);
        std::fs::write(dir.path().join(CONFIG), v.to_string()).unwrap();
        assert_eq!(
            ModelConfig::from_dir(dir.path()).unwrap().eos_token_ids,
            vec![5, 6]
        );
        std::fs::write(
            dir.path().join(GENERATION_CONFIG),
            r#"{"eos_token_id": [200002, 199999, 200012], "do_sample": true}"#,
        )
        .unwrap();
        assert_eq!(
            ModelConfig::from_dir(dir.path()).unwrap().eos_token_ids,
            vec![200002, 199999, 200012]
        );
        std::fs::write(dir.path().join(GENERATION_CONFIG), r#"{"eos_token_id": 3}"#).unwrap();
        assert_eq!(
            ModelConfig::from_dir(dir.path()).unwrap().eos_token_ids,
            vec![3]
        );
        // No eos anywhere: no stop tokens.
        std::fs::write(dir.path().join(GENERATION_CONFIG), "{}").unwrap();
        v.as_object_mut().unwrap().remove("eos_token_id");
        std::fs::write(dir.path().join(CONFIG), v.to_string()).unwrap();
        assert!(ModelConfig::from_dir(dir.path())
            .unwrap()
            .eos_token_ids
            .is_empty());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "hidden_size",
                json!(48),
                "hidden_size: expected a multiple of 32",
            ),
            (
                "intermediate_size",
                json!(100),
                "intermediate_size: expected a multiple of 32 (one MXFP4 block), got 100",
            ),
            ("head_dim", json!(15), "head_dim: expected an even number"),
            (
                "num_key_value_heads",
                json!(3),
                "num_attention_heads: expected a multiple of num_key_value_heads (3), got 4",
            ),
            (
                "num_experts_per_tok",
                json!(9),
                "experts_per_token: expected at most num_experts (8), got 9",
            ),
            (
                "layer_types",
                json!(["full_attention"]),
                "layer_types: expected 4 entries (num_hidden_layers), got 1",
            ),
            (
                "layer_types",
                json!(["full_attention", "x", "full_attention", "full_attention"]),
                "layer_types[1]",
            ),
            (
                "vocab_size",
                json!(0),
                "vocab_size: expected a positive integer, got 0",
            ),
            (
                "vocab_size",
                json!("big"),
                "vocab_size: expected a non-negative integer",
            ),
            (
                "rms_norm_eps",
                json!(-1.0),
                "rms_norm_eps: expected a positive",
            ),
            (
                "rope_scaling",
                json!({"rope_type": "linear"}),
                "rope_scaling.rope_type",
            ),
            ("eos_token_id", json!("x"), "eos_token_id"),
            (
                "experts_per_token",
                json!(3),
                "experts_per_token: expected 2 (the value of num_experts_per_tok), got 3",
            ),
        ];
        for (field, value, want) in cases {
            let mut v = hf();
            v[field] = value;
            let got = message(&v);
            assert!(got.contains(want), "{field}: {got:?} lacks {want:?}");
        }
        let mut v = hf();
        v.as_object_mut().unwrap().remove("head_dim");
        assert!(message(&v).contains("head_dim: required field is missing"));
        assert!(matches!(
            ModelConfig::from_json_str("[1]", Path::new("c.json")),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            ModelConfig::from_json_str("{", Path::new("c.json")),
            Err(Error::Json { .. })
        ));
    }
}
