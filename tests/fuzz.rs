//! Seeded, bounded fuzzing of what a user's files feed the parsers: safetensors headers
//! (structured edits of the JSON, not only random bytes) and config.json. Every case must end
//! in Ok or a typed error, never a panic, and whatever parses must survive every size
//! computation the engine makes before touching a GPU. A fixed number of cases (and a time
//! cap, for slow CI machines), so CI runs the same cases every time; the seed is printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use oss_wgpu::checkpoint::{Checkpoint, TensorId, WeightSource};
use oss_wgpu::config::ModelConfig;
use oss_wgpu::inspect::{decode_bytes, param_counts};
use oss_wgpu::model::{forward::DEFAULT_CHUNK, kv_cache, weights};
use oss_wgpu::testing::writer::{
    hf_config_json, original_config_json, tiny_config, tokenizer_json, write_json, Rng, WeightSet,
    WriteLayout,
};

const SEED: u64 = 0xf022;
const CASES: usize = 400;
const TIME_CAP: Duration = Duration::from_secs(20);

/// Values that break parsers: extremes, wrong types, near-overflow sizes.
fn nasty(rng: &mut Rng) -> Value {
    let picks: [Value; 16] = [
        Value::Null,
        Value::Bool(true),
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1),
        serde_json::json!(u64::MAX),
        serde_json::json!(i64::MIN),
        serde_json::json!(usize::MAX / 2 + 1),
        serde_json::json!(4294967296u64),
        serde_json::json!(1e308),
        serde_json::json!(-0.0),
        serde_json::json!(0.5),
        serde_json::json!("12"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([1, 2, 3]),
    ];
    picks[rng.below(picks.len() as u64) as usize].clone()
}

/// Replaces one random leaf (or container) of `v` by a nasty value, or drops a key.
fn mutate(v: &mut Value, rng: &mut Rng, depth: usize) {
    match v {
        Value::Object(m) if !m.is_empty() && depth < 4 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len() as u64) as usize];
            match rng.below(6) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), nasty(rng));
                }
                _ => mutate(m.get_mut(k).unwrap(), rng, depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && depth < 4 => {
            let i = rng.below(a.len() as u64) as usize;
            match rng.below(5) {
                0 => {
                    a.remove(i);
                }
                1 => a.push(nasty(rng)),
                _ => mutate(&mut a[i], rng, depth + 1),
            }
        }
        _ => *v = nasty(rng),
    }
}

/// Everything computed from a config before the GPU: must not panic or overflow.
fn sizes(c: &ModelConfig) {
    let _ = param_counts(c);
    let _ = decode_bytes(c);
    let _ = weights::Weights::gpu_bytes(c, 128 << 20);
    for ctx in [1, c.max_position_embeddings] {
        let _ = kv_cache::bytes(c, ctx, DEFAULT_CHUNK, 4);
    }
}

fn within_budget(start: Instant, case: usize) -> bool {
    if start.elapsed() > TIME_CAP {
        println!("time cap reached after {case} cases");
        return false;
    }
    true
}

#[test]
fn config_json_never_panics() {
    let mut rng = Rng::new(SEED);
    println!("seed {SEED:#x}, {CASES} cases");
    let start = Instant::now();
    let bases = [
        hf_config_json(&tiny_config()),
        original_config_json(&tiny_config()),
    ];
    let path = Path::new("config.json");
    for case in 0..CASES {
        if !within_budget(start, case) {
            break;
        }
        let mut v = bases[case % 2].clone();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut v, &mut rng, 0);
        }
        let text = v.to_string();
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(c) = ModelConfig::from_json_str(&text, path) {
                sizes(&c);
            }
        }));
        assert!(r.is_ok(), "case {case} panicked on config:\n{text}");
    }
}

/// The header of a safetensors file: (JSON, data bytes).
fn split_file(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join_file(header: &Value, data: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

#[test]
fn safetensors_headers_never_panic() {
    let ws = WeightSet::random(&tiny_config(), SEED);
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), WriteLayout::HfMxfp4 { shards: 1 })
        .unwrap();
    write_json(
        &dir.path().join("tokenizer.json"),
        &tokenizer_json(ws.config.vocab_size),
    )
    .unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .unwrap();
    let good = std::fs::read(&file).unwrap();
    let (header, data) = split_file(&good);
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let mut rng = Rng::new(SEED ^ 1);
    println!("seed {:#x}, {CASES} cases", SEED ^ 1);
    let start = Instant::now();
    for case in 0..CASES {
        if !within_budget(start, case) {
            break;
        }
        let mut h = header.clone();
        let name = &names[rng.below(names.len() as u64) as usize];
        let t = h.get_mut(name).unwrap();
        match rng.below(5) {
            // One field of one tensor: dtype, shape or offsets.
            0 => t["dtype"] = nasty(&mut rng),
            1 => mutate(&mut t["shape"], &mut rng, 1),
            2 => mutate(&mut t["data_offsets"], &mut rng, 1),
            // Anything anywhere in the header.
            3 => mutate(&mut h, &mut rng, 0),
            // A consistent-looking entry that claims more data than there is.
            _ => {
                t["shape"] = serde_json::json!([u32::MAX, u32::MAX]);
                t["data_offsets"] = serde_json::json!([0, u64::MAX]);
            }
        }
        let mut bytes = join_file(&h, &data);
        if rng.below(4) == 0 {
            // And sometimes a cut.
            let keep = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
        }
        std::fs::write(&file, &bytes).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(ck) = Checkpoint::open(dir.path()) {
                for id in TensorId::all(ck.config().num_hidden_layers) {
                    let _ = ck.tensor(id);
                }
                let _ = oss_wgpu::checkpoint::values::check_values(&ck, 2, false);
            }
        }));
        assert!(r.is_ok(), "case {case} panicked on header:\n{h}");
    }
    std::fs::write(&file, &good).unwrap();
    assert!(Checkpoint::open(dir.path()).is_ok());
}
