//! Byte-level BPE tokenizer.json files for tests: GPT-2's byte alphabet, the harmony special
//! tokens, and the one JSON layout the `tokenizers` crate reads. The test writer, the library's
//! unit-test tokenizer and the tests' o200k_harmony conversion all build theirs here.

use serde_json::{json, Map, Value};

/// The harmony special tokens a tokenizer.json must have for chat generation, in
/// o200k_harmony's order (https://github.com/openai/harmony/blob/main/docs/format.md).
/// scripts/make_fixtures.py reads its list from this declaration.
pub const HARMONY_SPECIALS: [&str; 9] = [
    "<|startoftext|>",
    "<|endoftext|>",
    "<|return|>",
    "<|constrain|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|call|>",
];

/// GPT-2's byte -> printable char map (`bytes_to_unicode` in openai/gpt-2's encoder.py), the
/// alphabet byte-level BPE vocabularies are written in.
pub fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("below 512")
}

/// `bytes` spelled in that alphabet, as a vocabulary or merge entry.
pub fn byte_level(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

/// The 256 single bytes at ids 0..256.
pub fn byte_vocab() -> Map<String, Value> {
    (0..=255u8)
        .map(|b| (byte_char(b).to_string(), b.into()))
        .collect()
}

/// One `added_tokens` entry: a special token, matched whole before any splitting.
pub fn special_token(id: usize, content: &str) -> Value {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false,
           "rstrip": false, "normalized": false, "special": true})
}

/// `added_tokens`: each of `specials` at `first_id` onwards.
pub fn added_specials<'a>(
    first_id: usize,
    specials: impl IntoIterator<Item = &'a str>,
) -> Vec<Value> {
    specials
        .into_iter()
        .enumerate()
        .map(|(i, s)| special_token(first_id + i, s))
        .collect()
}

/// A byte-level BPE tokenizer.json. `split: None` pre-tokenizes with GPT-2's regex inside the
/// byte-level step; `Some(pattern)` is tiktoken's way: split by `pattern` first, and a piece
/// that is a whole vocabulary entry is taken as is before any merge (`ignore_merges`).
pub fn bpe_json(
    vocab: Map<String, Value>,
    merges: Vec<String>,
    added: Vec<Value>,
    split: Option<&str>,
) -> Value {
    let byte_level = |use_regex: bool| {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
               "use_regex": use_regex})
    };
    let pre_tokenizer = match split {
        None => byte_level(true),
        Some(pattern) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
             "invert": false},
            byte_level(false)]}),
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": byte_level(split.is_none()),
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": split.is_some(),
                  "vocab": vocab, "merges": merges}
    })
}
