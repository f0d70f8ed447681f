//! The real o200k_harmony vocabulary without a download: a tokenizer.json converted from the
//! o200k_base ranks tiktoken-rs embeds, and the o200k_base.tiktoken file itself (what
//! openai-harmony loads from $TIKTOKEN_ENCODINGS_BASE, checking its sha256).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use oss_wgpu::testing::tokenizer::{bpe_json, byte_level, special_token};
use oss_wgpu::tokenizer::Tokenizer;
use tiktoken_rs::CoreBPE;

/// o200k_harmony's ordinary tokens are ids 0..199998; specials run to 201087 (the encoding's
/// special-token table, https://github.com/openai/harmony/blob/main/docs/format.md).
pub const ORDINARY: u32 = 199_998;

pub fn tiktoken() -> &'static CoreBPE {
    tiktoken_rs::o200k_harmony_singleton()
}

pub fn hf() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(build_tokenizer_json)
}

/// tiktoken merges the adjacent pair whose concatenation has the lowest rank. A BPE merge list
/// reproduces that when it lists, for every token in rank order, each split of it into two
/// tokens (the same conversion transformers' TikTokenConverter does).
pub fn build_tokenizer_json() -> Tokenizer {
    let bpe = tiktoken();
    let tokens: Vec<Vec<u8>> = (0..ORDINARY)
        .map(|r| bpe.decode_bytes(&[r]).expect("every ordinary rank decodes"))
        .collect();
    let rank: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(r, t)| (t.as_slice(), r as u32))
        .collect();
    let mut merges = Vec::new();
    for token in &tokens {
        let mut splits: Vec<(u32, u32, usize)> = (1..token.len())
            .filter_map(|i| Some((*rank.get(&token[..i])?, *rank.get(&token[i..])?, i)))
            .collect();
        splits.sort_unstable();
        merges.extend(
            splits.into_iter().map(|(_, _, i)| {
                format!("{} {}", byte_level(&token[..i]), byte_level(&token[i..]))
            }),
        );
    }
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(r, t)| (byte_level(t), r.into()))
        .collect();
    let mut specials: Vec<(u32, &str)> = bpe
        .special_tokens()
        .into_iter()
        .map(|s| (bpe.encode_with_special_tokens(s)[0], s))
        .collect();
    specials.sort_unstable();
    let added = specials
        .iter()
        .map(|&(id, s)| special_token(id as usize, s))
        .collect();
    let json = bpe_json(vocab, merges, added, Some(tiktoken_rs::O200K_BASE_PAT_STR));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).expect("o200k_harmony tokenizer.json loads")
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A folder holding o200k_base.tiktoken (rank order, `base64 rank` lines, as OpenAI publishes
/// it), written once per test process.
pub fn tiktoken_encodings_dir() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bpe = tiktoken();
        let mut text = String::new();
        for r in 0..ORDINARY {
            let bytes = bpe.decode_bytes(&[r]).expect("every ordinary rank decodes");
            text.push_str(&format!("{} {r}\n", base64(&bytes)));
        }
        std::fs::write(dir.path().join("o200k_base.tiktoken"), text).unwrap();
        let path = dir.path().to_path_buf();
        (dir, path)
    })
    .1
}
