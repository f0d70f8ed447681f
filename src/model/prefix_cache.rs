//! Which part of the KV cache a new prompt may re-use from the last generation.
//!
//! The cache holds the KV of `cached` (prompt and generated ids) at positions 0..L. A prompt
//! sharing the first `d` ids re-uses them and prefills from position d:
//!
//! - Full-attention layers hold every position: the new keys overwrite d.., nothing else moves.
//! - Sliding layers hold a ring of `capacity` = window + chunk slots (slot = pos % capacity).
//!   A query at q reads keys q-window+1..=q. Prefill writes a step's keys before reading, and a
//!   step (at most chunk tokens) never overwrites a key one of its own queries needs, so the
//!   only keys that must come from the old ring are d-window+1..d-1 (from 0 when d < window).
//!   Such a key p is intact unless the old sequence wrote p + capacity, i.e. unless
//!   p + capacity <= L - 1. So reuse from d is exact when max(0, d+1-window) + capacity >= L;
//!   otherwise the prompt is prefilled from 0.
//! - d is rounded down to a multiple of the prefill attention's query tile (BQ: 32 in
//!   attention_prefill_f32.wgsl, 64 in attention_prefill_f16.wgsl), or of the step when the
//!   step is shorter (a step of at most BQ tokens is one tile): a tile's first query fixes
//!   where its key blocks start, so with tiles on the same positions as a cold prefill the
//!   result is bit-identical to it (when the step length is a multiple of the tile too, as the
//!   default 2048 is; otherwise later steps' tiles differ and the results agree to rounding).
//!   At least one prompt id is always prefilled (its logits give the first sample).
//!
//! KV written by decode steps (generated ids) is re-used too: the same function of the same
//! inputs, though computed by the decode kernels rather than the prefill ones.

use crate::config::ModelConfig;
use crate::model::kv_cache;

/// The prefill attention kernels' largest BQ (queries per workgroup), a multiple of the
/// other's: reuse from a multiple of it keeps the tiles where a cold prefill has them on
/// either kernel.
pub const QUERY_TILE: usize = 64;
const _: () = assert!(
    QUERY_TILE as u32 == crate::kernels::attention_prefill_f16::BQ
        && QUERY_TILE as u32 % crate::kernels::attention_prefill_f32::BQ == 0
);

/// How many leading ids of `prompt` may be taken from a cache holding `cached`.
pub fn reusable_prefix(
    cached: &[u32],
    prompt: &[u32],
    config: &ModelConfig,
    ctx: usize,
    chunk: usize,
) -> usize {
    let shared = cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    // Steps of at most a tile (powers of two in practice) are one tile each.
    let tile = QUERY_TILE.min(chunk);
    let d = shared.min(prompt.len().saturating_sub(1)) / tile * tile;
    if d == 0 {
        return 0;
    }
    let len = cached.len();
    let rings_intact = (0..config.num_hidden_layers)
        .filter(|&l| config.is_sliding(l))
        .all(|l| {
            let capacity = kv_cache::capacity(config, l, ctx, chunk);
            let lowest_needed = (d + 1).saturating_sub(config.sliding_window);
            lowest_needed + capacity >= len
        });
    if rings_intact {
        d
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerType;

    fn config(window: usize, sliding: bool) -> ModelConfig {
        let mut c = crate::testing::writer::tiny_config();
        c.sliding_window = window;
        let kind = if sliding {
            LayerType::Sliding
        } else {
            LayerType::Full
        };
        c.layer_types = vec![kind; c.num_hidden_layers];
        c
    }

    #[test]
    fn shared_prefix_rounded_to_the_query_tile_with_one_id_left_to_prefill() {
        let c = config(8, false);
        let cached: Vec<u32> = (0..100).collect();
        let same_start =
            |n: u32, extra: u32| -> Vec<u32> { (0..n).chain(500..500 + extra).collect() };
        assert_eq!(
            reusable_prefix(&cached, &same_start(40, 5), &c, 256, 16),
            32
        );
        assert_eq!(reusable_prefix(&cached, &same_start(15, 5), &c, 256, 16), 0);
        // The whole prompt cached: the last id is still prefilled.
        assert_eq!(
            reusable_prefix(&cached, &same_start(33, 0), &c, 256, 16),
            32
        );
        assert_eq!(
            reusable_prefix(&cached, &same_start(32, 0), &c, 256, 16),
            16
        );
        assert_eq!(reusable_prefix(&[], &same_start(40, 0), &c, 256, 16), 0);
    }

    #[test]
    fn sliding_rings_limit_how_far_back_reuse_reaches() {
        // window 8, steps of 16: rings of 24 slots.
        let c = config(8, true);
        let prompt = |d: u32| -> Vec<u32> { (0..d).chain(900..910).collect() };
        // From d = 32 the first new query needs keys 25..31: intact while the cache ends by 49.
        let cached: Vec<u32> = (0..49).collect();
        assert_eq!(reusable_prefix(&cached, &prompt(32), &c, 256, 16), 32);
        let cached: Vec<u32> = (0..50).collect();
        assert_eq!(reusable_prefix(&cached, &prompt(32), &c, 256, 16), 0);
        // Nothing overwritten yet (cache shorter than the ring): any shared prefix.
        assert_eq!(
            reusable_prefix(&(0..20).collect::<Vec<_>>(), &prompt(16), &c, 256, 16),
            16
        );
    }
}
