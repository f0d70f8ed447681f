//! oss-wgpu: OpenAI's gpt-oss models on any GPU through wgpu and WGSL compute shaders.
//!
//! Data flow: checkpoint (mmap, layout, validation) -> upload (split to the binding limit) ->
//! prefill (batched kernels) -> decode loop (one submit per token, state resident on the GPU)
//! -> sampler. See ARCHITECTURE.md.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod conversation;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod harmony;
pub mod hub;
pub mod inspect;
pub mod kernels;
pub mod model;
pub mod npy;
pub mod reference;
pub mod server;
pub mod testing;
pub mod tokenizer;

pub use error::{Error, Result};
