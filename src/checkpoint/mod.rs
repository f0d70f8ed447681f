//! Reading checkpoints on disk: safetensors shards, layouts, validation, and the MXFP4 codec.
//! The report on a checkpoint is `crate::inspect`; test checkpoints are `crate::testing::writer`.

pub mod layout;
pub mod loader;
pub mod mxfp4;
pub mod names;
pub mod shards;
pub mod tensor;
pub mod values;

pub use layout::Layout;
pub use loader::Checkpoint;
pub use names::{ExpertMatrix, LayerTensor, TensorId, TensorKind};
pub use tensor::{canonical_shape, DType, Tensor, WeightSource};
