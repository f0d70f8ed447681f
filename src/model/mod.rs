//! The model on the GPU: weights, KV cache, and the forward pass (prefill and decode).

pub mod rope;
