//! Tiled causal attention with sinks and sliding window for a prefill step, over the cache.

use super::{attention_prefill_f16, AttentionStep};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "attention_prefill_f32",
    params {
        n_heads: u32, n_kv_heads: u32, capacity: u32, window: u32, qkv_stride: u32, scale: f32,
        keep_reads: u32, _pad1: u32,
    }
    bindings {
        step: Uniform, qkv: Read, k_cache: ReadWrite, v_cache: ReadWrite,
        sinks: Read, out: ReadWrite,
    }
}

/// Queries and keys per block (the shader's BQ and BK).
pub const BQ: u32 = 32;
const BK: u32 = 32;
/// Largest head_dim the kernel's tiles hold (the shader's D_MAX).
pub const MAX_HEAD_DIM: u32 = 64;
/// The shader's row strides in floats: the query and key tiles (LDQ), the probabilities (LDP).
const LDQ: u32 = MAX_HEAD_DIM + 4;
const LDP: u32 = BK + 4;
/// The shader's workgroup memory: the query, key and value tiles, the block's probabilities,
/// the 8 partial row maxima and sums a row, and the rows' running state (32,640 bytes).
const WORKGROUP_BYTES: u32 =
    4 * (BQ * LDQ + BK * LDQ + BK * MAX_HEAD_DIM + BQ * LDP + 2 * BQ * 8 + 3 * BQ);

/// `out` [n_tokens, heads, head_dim] for the step's queries (q already rotated, in `qkv`):
/// attention_prefill_f16 where [`attention_prefill_f16::applies`], this kernel elsewhere.
pub struct AttentionPrefill<'a> {
    pub attention: AttentionStep<'a>,
    /// The largest step: buffers are checked for it and the grid is set per step.
    pub max_tokens: u32,
    /// f32 [n_heads].
    pub sinks: &'a GpuBuffer,
    /// f32 [max_tokens, n_heads, head_dim].
    pub out: &'a GpuBuffer,
}

impl AttentionPrefill<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        if attention_prefill_f16::applies(gpu, &self.attention.layout) {
            return attention_prefill_f16::dispatch(self, gpu);
        }
        let a = &self.attention;
        let sh = &a.layout;
        let d = sh.head_dim;
        if d > MAX_HEAD_DIM || d % 2 != 0 || sh.n_heads % sh.n_kv_heads != 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: head_dim / heads"),
                expected: format!(
                    "even head_dim up to {MAX_HEAD_DIM}, heads a multiple of KV heads"
                ),
                actual: format!("{d} / {} / {}", sh.n_heads, sh.n_kv_heads),
            });
        }
        let room = gpu.limits().max_compute_workgroup_storage_size;
        if WORKGROUP_BYTES > room {
            return Err(Error::Shape {
                what: format!("{SHADER}: workgroup memory"),
                expected: format!("at most the device's {room} bytes"),
                actual: WORKGROUP_BYTES.to_string(),
            });
        }
        let [step, qkv, k_cache, v_cache] = a.bind(gpu, SHADER, self.max_tokens)?;
        let out_bytes = self.max_tokens as u64 * sh.n_heads as u64 * d as u64 * 4;
        need(&[(self.sinks, sh.n_heads as u64 * 4), (self.out, out_bytes)])?;
        let params = Params {
            n_heads: sh.n_heads,
            n_kv_heads: sh.n_kv_heads,
            capacity: sh.capacity,
            window: sh.window,
            qkv_stride: sh.qkv_stride,
            scale: sh.scale(),
            ..Default::default()
        };
        Bindings {
            step,
            qkv,
            k_cache,
            v_cache,
            sinks: self.sinks.binding(),
            out: self.out.binding(),
        }
        .build(
            gpu,
            &[("HEAD_DIM", d as f64)],
            &params,
            &self.out.label,
            self.grid(gpu, self.max_tokens),
        )
    }

    /// The grid for a step of `n_tokens` queries, on whichever kernel `dispatch` chose.
    pub fn grid(&self, gpu: &Gpu, n_tokens: u32) -> [u32; 3] {
        let bq = if attention_prefill_f16::applies(gpu, &self.attention.layout) {
            attention_prefill_f16::BQ
        } else {
            BQ
        };
        // Heads along x, query blocks along y: the kernels take the blocks last first.
        [self.attention.layout.n_heads, n_tokens.div_ceil(bq), 1]
    }
}
