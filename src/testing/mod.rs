//! Test support the library ships so tests, benchmarks and `oss-wgpu write-synthetic` can build
//! checkpoints and tokenizers without a download. Nothing on the load or inference path uses it.

pub mod tokenizer;
pub mod writer;
