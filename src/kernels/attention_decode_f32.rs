//! Split-K attention for one query position (flash-decoding): per-chunk softmax partials,
//! with the step's RoPE and KV-cache append folded in (q, k and v come unrotated in `qkv`).

use super::{prefetch, AttentionStep};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "attention_decode_f32",
    params {
        n_heads: u32,
        n_kv_heads: u32,
        capacity: u32,
        /// 0: full causal attention; otherwise the sliding window.
        window: u32,
        qkv_stride: u32,
        scale: f32,
        /// Always 0 (prefetch.wgsl's prefetch_keep).
        keep_reads: u32,
        _pad1: u32,
    }
    bindings {
        step: Uniform, qkv: Read, k_cache: ReadWrite, v_cache: ReadWrite,
        partials: ReadWrite, rope: Read, sinks: Read, out: ReadWrite, prefetch_src: Read,
    }
}

/// Cached positions per workgroup (CHUNK in the shader).
pub const CHUNK: u32 = 128;
const WG: u32 = 256;
const MAX_GROUP: u32 = 16;

/// Chunks (workgroups per KV head) that a query at `pos` needs.
pub fn chunks(pos: u32, window: u32) -> u32 {
    let visible = if window > 0 {
        (pos + 1).min(window)
    } else {
        pos + 1
    };
    visible.div_ceil(CHUNK)
}

/// Whether one chunk covers what a query at `pos` sees: the decode kernel then writes the
/// final output itself and attention_combine_f32 is not needed.
pub fn single_chunk(pos: u32, window: u32) -> bool {
    chunks(pos, window) <= 1
}

/// Chunks up to which a query's heads each get their own workgroups ([`HeadSplit::One`]).
const SHORT_CHUNKS: u32 = 4;

/// Which query heads a workgroup takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSplit {
    /// All query heads of its KV head, which share its cache reads: long contexts.
    Grouped,
    /// One: a short context's few positions spread over 8x the workgroups, which shortens
    /// each one's serial work (the KV head's rows are read once per query head, from L2).
    One,
}

/// The split a query at `pos` uses on a layer with `window` (0: full).
pub fn split_at(pos: u32, window: u32) -> HeadSplit {
    if chunks(pos, window) <= SHORT_CHUNKS {
        HeadSplit::One
    } else {
        HeadSplit::Grouped
    }
}

/// Whether a query on a layer with `window` may use `split` at some position.
pub fn split_used(split: HeadSplit, window: u32) -> bool {
    split == HeadSplit::One || !(window > 0 && window.div_ceil(CHUNK) <= SHORT_CHUNKS)
}

fn heads_per_workgroup(group: u32, split: HeadSplit) -> u32 {
    match split {
        HeadSplit::Grouped => group,
        HeadSplit::One => 1,
    }
}

/// Whether every query of a layer with this `window` (0: full) is [`single_chunk`].
pub fn always_single_chunk(window: u32) -> bool {
    window > 0 && window <= CHUNK
}

/// Floats in the partials buffer for up to `max_positions` visible positions.
pub fn partials_len(n_heads: u32, head_dim: u32, max_positions: u32) -> u64 {
    max_positions.div_ceil(CHUNK) as u64 * n_heads as u64 * (head_dim as u64 + 2)
}

/// Attention of one layer for the query at the step's position; q, k and v come unrotated in
/// `attention.qkv` [qkv_stride].
pub struct AttentionDecode<'a> {
    pub attention: AttentionStep<'a>,
    /// f32 [chunks, n_heads, head_dim + 2].
    pub partials: &'a GpuBuffer,
    /// [positions, head_dim / 2] (cos, sin).
    pub rope: &'a GpuBuffer,
    /// f32 [n_heads].
    pub sinks: &'a GpuBuffer,
    /// f32 [n_heads, head_dim], written when one chunk covers the visible positions.
    pub out: &'a GpuBuffer,
    /// The next matvec's weights (o_proj's), read into L2 by extra workgroups (see
    /// [`prefetch::worth_it`]).
    pub prefetch: Option<&'a GpuBuffer>,
}

impl AttentionDecode<'_> {
    /// Records the dispatch; its grid is set per step with [`Grid::at`].
    pub fn dispatch(&self, gpu: &Gpu, split: HeadSplit) -> Result<Dispatch> {
        let a = &self.attention;
        let sh = &a.layout;
        let (heads, kv_heads, d) = (sh.n_heads, sh.n_kv_heads, sh.head_dim);
        let group = heads / kv_heads.max(1);
        if group == 0
            || group > MAX_GROUP
            || heads % kv_heads != 0
            || d % 8 != 0
            || (2 * WG) % d != 0
        {
            return Err(Error::Shape {
                what: format!("{SHADER}: heads / KV heads / head_dim"),
                expected: format!(
                    "heads a multiple of KV heads, at most {MAX_GROUP} per KV head, head_dim a multiple of 8 dividing {}",
                    2 * WG
                ),
                actual: format!("{heads} / {kv_heads} / {d}"),
            });
        }
        let [step, qkv, k_cache, v_cache] = a.bind(gpu, SHADER, 1)?;
        need(&[
            (self.partials, heads as u64 * (d as u64 + 2) * 4),
            (self.sinks, heads as u64 * 4),
            (self.out, heads as u64 * d as u64 * 4),
        ])?;
        let params = Params {
            n_heads: heads,
            n_kv_heads: kv_heads,
            capacity: sh.capacity,
            window: sh.window,
            qkv_stride: sh.qkv_stride,
            scale: sh.scale(),
            ..Default::default()
        };
        let per_wg = heads_per_workgroup(group, split);
        let constants = [
            ("CHUNK", CHUNK as f64),
            ("GROUP", per_wg as f64),
            ("KV_GROUP", group as f64),
            ("HEAD_DIM", d as f64),
        ];
        Bindings {
            step,
            qkv,
            k_cache,
            v_cache,
            partials: self.partials.binding(),
            rope: self.rope.binding(),
            sinks: self.sinks.binding(),
            out: self.out.binding(),
            // Bound whether or not it prefetches: then any buffer serves.
            prefetch_src: self.prefetch.unwrap_or(a.qkv).binding(),
        }
        .build(
            gpu,
            &constants,
            &params,
            &self.partials.label,
            [1, heads / per_wg, 1],
        )
    }

    /// What the per-step grid depends on.
    pub fn grid_shape(&self, split: HeadSplit) -> Grid {
        let sh = &self.attention.layout;
        let group = sh.n_heads / sh.n_kv_heads.max(1);
        Grid {
            window: sh.window,
            head_blocks: sh.n_heads / heads_per_workgroup(group, split).max(1),
            split,
            prefetch: self.prefetch.map(|_| prefetch::WORKGROUPS),
        }
    }
}

/// The shape behind an attention dispatch's per-step grid.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    window: u32,
    head_blocks: u32,
    split: HeadSplit,
    /// Planes of prefetching workgroups (z > 0), at least this many, follow the attention's own.
    prefetch: Option<u32>,
}

impl Grid {
    /// The grid for a query at `pos`: none where the other split serves it.
    pub fn at(&self, pos: u32) -> [u32; 3] {
        if split_at(pos, self.window) != self.split {
            return [0, 0, 0];
        }
        self.workgroups(pos)
    }

    /// The grid this split needs for a query at `pos`, whether or not it is the one used
    /// there (tests run both): the attention's workgroups at z = 0, and with prefetching as
    /// many planes more as give at least its workgroups.
    pub fn workgroups(&self, pos: u32) -> [u32; 3] {
        let chunks = chunks(pos, self.window);
        let plane = chunks * self.head_blocks;
        let planes = self.prefetch.map_or(0, |n| n.div_ceil(plane.max(1)));
        [chunks, self.head_blocks, 1 + planes]
    }
}
