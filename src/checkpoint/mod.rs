//! Checkpoints on disk: safetensors shards, layouts, validation, and the MXFP4 codec.

pub mod mxfp4;
pub mod names;
pub mod tensor;

pub use names::{LayerTensor, TensorId};
pub use tensor::{DType, Tensor, WeightSource};
