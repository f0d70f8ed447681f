//! The model on the GPU: weights, KV cache, the forward pass (prefill and decode) and
//! generation.

mod activations;
pub mod decode;
pub mod fit;
pub mod forward;
pub mod generate;
pub mod kv_cache;
pub mod locate;
pub mod matrix;
pub mod memory;
pub mod plan;
pub mod prefill;
pub mod prefix_cache;
pub mod rope;
pub mod sampler;
pub mod synthetic;
pub mod weights;

pub use forward::{Forward, SamplingParams};
pub use generate::{GenerateOptions, GenerateStats, Generator};
pub use weights::{Bf16Matrix, ExpertWeights, F32Vector, LayerWeights, Weights};

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::Gpu;

/// A checkpoint's weights on the GPU, with what generation needs from its folder.
pub struct Model {
    pub config: ModelConfig,
    pub weights: Weights,
    pub dir: PathBuf,
    pub tokenizer_path: Option<PathBuf>,
}

impl Model {
    /// Opens and validates the checkpoint in `dir`, then uploads it (progress bar on stderr
    /// when `progress`).
    pub fn load(gpu: &Gpu, dir: &Path, progress: bool) -> Result<Model> {
        Self::upload(gpu, &Checkpoint::open(dir)?, dir, progress)
    }

    /// Random weights of `config`'s shapes, generated on the GPU (benchmarks).
    pub fn synthetic(gpu: &Gpu, config: &ModelConfig, seed: u32) -> Result<Model> {
        Ok(Model {
            config: config.clone(),
            weights: Weights::synthetic(gpu, config, seed)?,
            dir: PathBuf::new(),
            tokenizer_path: None,
        })
    }

    /// Uploads an opened checkpoint.
    pub fn upload(gpu: &Gpu, ckpt: &Checkpoint, dir: &Path, progress: bool) -> Result<Model> {
        let weights = Weights::upload(gpu, ckpt, progress)?;
        Ok(Model {
            config: crate::checkpoint::WeightSource::config(ckpt).clone(),
            weights,
            dir: dir.to_path_buf(),
            tokenizer_path: ckpt.tokenizer_path(),
        })
    }
}
