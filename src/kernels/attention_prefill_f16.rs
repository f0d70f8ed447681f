//! attention_prefill_f32's job with both products on cooperative matrices (tensor cores):
//! f16 operands, f32 accumulation, for an f16 KV cache and head_dim 64.
//! [`AttentionPrefill`](super::attention_prefill_f32::AttentionPrefill) dispatches it where
//! [`applies`] says so.

use super::attention_prefill_f32::AttentionPrefill;
use super::AttentionLayout;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, KvChoice};

kernel! {
    shader: "attention_prefill_f16",
    params {
        n_heads: u32, n_kv_heads: u32, capacity: u32, window: u32, qkv_stride: u32, scale: f32,
        keep_reads: u32, _pad1: u32,
    }
    bindings {
        step: Uniform, qkv: Read, k_cache: Read, v_cache: Read,
        sinks: Read, out: ReadWrite,
    }
}

/// Queries per workgroup (the shader's BQ): 4 subgroups of 16 query rows.
pub const BQ: u32 = 64;
/// The one head dimension the shader's tiles are laid out for (its D).
pub const HEAD_DIM: u32 = 64;
/// The shader's subgroups per workgroup (N_SG).
const SUBGROUPS: u32 = 4;
/// The shader's workgroup memory: P (and first the queries) as two f16 parts, the key and
/// value tiles (rows of 72 halfs), each subgroup's 16 x 64 f32 staging, the row shifts.
const WORKGROUP_BYTES: u32 =
    2 * (2 * BQ * 72) + 2 * (2 * 32 * 72) + 4 * SUBGROUPS * 16 * 64 + 4 * BQ;

/// Whether prefill attention over `layout` runs here rather than in attention_prefill_f32:
/// the device computes on cooperative matrices, the cache holds f16 (so keys and values are
/// exact f16 operands), heads are 64 wide, and subgroups are 32 or 64 lanes (2 or 4 a query
/// row).
pub fn applies(gpu: &Gpu, layout: &AttentionLayout) -> bool {
    let p = gpu.precision();
    let sg = gpu.features().subgroup_max_size;
    p.coop
        && p.kv == KvChoice::F16
        && layout.head_dim == HEAD_DIM
        && (sg == 32 || sg == 64)
        && WORKGROUP_BYTES <= gpu.limits().max_compute_workgroup_storage_size
}

pub(super) fn dispatch(a: &AttentionPrefill, gpu: &Gpu) -> Result<Dispatch> {
    let sh = &a.attention.layout;
    if !applies(gpu, sh) {
        return Err(Error::Shape {
            what: format!("{SHADER}: device and layout"),
            expected: format!(
                "cooperative matrices, an f16 KV cache, head_dim {HEAD_DIM}, subgroups of 32 or 64"
            ),
            actual: format!(
                "coop {}, KV {:?}, head_dim {}, subgroups of {}",
                gpu.precision().coop,
                gpu.precision().kv,
                sh.head_dim,
                gpu.features().subgroup_max_size
            ),
        });
    }
    let [step, qkv, k_cache, v_cache] = a.attention.bind(gpu, SHADER, a.max_tokens)?;
    let out_bytes = a.max_tokens as u64 * sh.n_heads as u64 * sh.head_dim as u64 * 4;
    need(&[(a.sinks, sh.n_heads as u64 * 4), (a.out, out_bytes)])?;
    let params = Params {
        n_heads: sh.n_heads,
        n_kv_heads: sh.n_kv_heads,
        capacity: sh.capacity,
        window: sh.window,
        qkv_stride: sh.qkv_stride,
        scale: sh.scale(),
        ..Default::default()
    };
    let wg = SUBGROUPS * gpu.features().subgroup_max_size;
    Bindings {
        step,
        qkv,
        k_cache,
        v_cache,
        sinks: a.sinks.binding(),
        out: a.out.binding(),
    }
    .build(
        gpu,
        &[("WG", wg as f64)],
        &params,
        &a.out.label,
        a.grid(gpu, a.max_tokens),
    )
}
