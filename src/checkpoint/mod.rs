//! Checkpoints on disk: safetensors shards, layouts, validation, and the MXFP4 codec.

pub mod inspect;
pub mod layout;
pub mod loader;
pub mod mxfp4;
pub mod names;
pub mod shards;
pub mod tensor;
pub mod values;
pub mod writer;

pub use layout::Layout;
pub use loader::Checkpoint;
pub use names::{ExpertMatrix, LayerTensor, TensorId, TensorKind};
pub use tensor::{canonical_shape, DType, Tensor, WeightSource};
