//! ModelConfig: every number of the model, from config.json in either naming (Hugging Face or
//! OpenAI's original), plus stop tokens from generation_config.json. Nothing is hard-coded
//! from gpt-oss-20b: tests use tiny configs with other values.

use std::path::Path;

use crate::error::{Error, Result};

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

impl ModelConfig {
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let _ = dir;
        Err(Error::Config {
            path: dir.join("config.json"),
            message: "not implemented yet".into(),
        })
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
