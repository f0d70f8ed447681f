//! KV reuse across generations (model::prefix_cache): a prompt that shares a prefix with what
//! the cache holds, prefilled from that prefix, gives bit-identical logits and ids to a cold
//! prefill of the whole prompt, on the tiny checkpoints and both paths. Prefill steps of 16
//! make the sliding layers' rings (window 8 + 16) wrap, so the ring condition is exercised:
//! where it allows reuse the result is exact, and where it refuses, reusing anyway is wrong
//! (the test would catch a condition that is too loose).

mod common;

use common::{paths, repo_path, Rng};
use oss_wgpu::gpu::Gpu;
use oss_wgpu::model::prefix_cache::reusable_prefix;
use oss_wgpu::model::{GenerateOptions, Generator, Model, SamplingParams};

const CTX: usize = 256;
const CHUNK: usize = 16;
const NEW_TOKENS: usize = 6;

fn opts(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
        prompt_logits: true,
    }
}

/// (logits of the prefilled positions, generated ids, reused count).
fn gen(g: &mut Generator, prompt: &[u32], reuse: Option<usize>) -> (Vec<f32>, Vec<u32>, usize) {
    let mut ids = Vec::new();
    let on = |id| {
        ids.push(id);
        Ok(true)
    };
    let reuse = reuse.unwrap_or_else(|| g.reusable_prefix(prompt));
    let stats = g
        .generate_from(prompt, reuse, &opts(NEW_TOKENS), on)
        .unwrap();
    (stats.prompt_logits.unwrap(), ids, stats.reused_tokens)
}

fn random_ids(rng: &mut Rng, n: usize, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| rng.below(vocab)).collect()
}

fn check(gpu: &Gpu, model: &Model, name: &str) {
    let vocab = model.config.vocab_size;
    let mut rng = Rng::new(14);
    let first = random_ids(&mut rng, 40, vocab as u32);
    let cold = |prompt: &[u32]| {
        let mut g = Generator::with_chunk(gpu, model, CTX, CHUNK, NEW_TOKENS).unwrap();
        gen(&mut g, prompt, Some(0))
    };
    let mut warm = Generator::with_chunk(gpu, model, CTX, CHUNK, NEW_TOKENS).unwrap();
    assert_eq!(warm.chunk(), CHUNK);
    gen(&mut warm, &first, None);
    // The cache holds the prompt and every sampled id but the last.
    assert_eq!(warm.kv_ids().len(), first.len() + NEW_TOKENS - 1);
    let cached_len = warm.kv_ids().len();

    // Shares 37 ids: reuse from 32 (a query tile), and the rings still hold 25..31.
    let mut second = first[..37].to_vec();
    second.extend(random_ids(&mut rng, 20, vocab as u32));
    let d = reusable_prefix(warm.kv_ids(), &second, &model.config, CTX, CHUNK);
    assert_eq!(d, 32, "{name}");
    let (logits, ids, reused) = gen(&mut warm, &second, None);
    assert_eq!(reused, 32);
    let (cold_logits, cold_ids, _) = cold(&second);
    assert_eq!(
        ids, cold_ids,
        "{name}: ids after reuse differ from a cold prefill"
    );
    assert_eq!(
        logits,
        cold_logits[d * vocab..],
        "{name}: logits after reuse are not bit-identical to a cold prefill"
    );

    // Reuse of the decode-written KV: the whole previous sequence plus a continuation.
    let mut third = warm.kv_ids().to_vec();
    third.extend(random_ids(&mut rng, 9, vocab as u32));
    let (_, _, reused) = gen(&mut warm, &third, None);
    assert_eq!(reused, (third.len() - 9) / 16 * 16, "{name}");

    // Shares only 16 ids of a longer cached sequence: position 16 would need keys 9..15, whose
    // ring slots later positions overwrote. Refused, and reusing anyway does give other logits.
    let mut warm = Generator::with_chunk(gpu, model, CTX, CHUNK, NEW_TOKENS).unwrap();
    gen(&mut warm, &first, None);
    let mut fourth = first[..16].to_vec();
    fourth.extend(random_ids(&mut rng, 30, vocab as u32));
    assert!(9 + 24 < cached_len && 25 + 24 >= cached_len);
    assert_eq!(
        reusable_prefix(warm.kv_ids(), &fourth, &model.config, CTX, CHUNK),
        0
    );
    let (cold_logits, cold_ids, _) = cold(&fourth);
    let (logits, ids, reused) = gen(&mut warm, &fourth, None);
    assert_eq!((reused, &ids, &logits), (0, &cold_ids, &cold_logits));
    let mut forced = Generator::with_chunk(gpu, model, CTX, CHUNK, NEW_TOKENS).unwrap();
    gen(&mut forced, &first, None);
    let (logits, _, _) = gen(&mut forced, &fourth, Some(16));
    assert_ne!(
        logits,
        cold_logits[16 * vocab..],
        "{name}: reuse past the ring should be wrong; the test lost its sensitivity"
    );
}

#[test]
fn reused_prefix_is_bit_identical_to_a_cold_prefill() {
    for gpu in paths() {
        for name in ["tiny-a", "tiny-b"] {
            let dir = repo_path(&format!("tests/fixtures/{name}"));
            let model = Model::load(&gpu, &dir, false).unwrap();
            check(&gpu, &model, name);
        }
    }
}
