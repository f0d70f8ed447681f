//! Checkpoints on disk: safetensors shards, layouts, validation, and the MXFP4 codec.

pub mod mxfp4;
