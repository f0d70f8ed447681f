//! Text <-> token ids through a Hugging Face `tokenizer.json`, and a streaming decoder.
//!
//! Harmony prompts (`crate::harmony`) are rendered as text that spells out the special tokens
//! (`<|start|>`, `<|message|>`, ...), so `encode` must turn each of those into its single id, and
//! must not add a BOS: a gpt-oss prompt starts directly with `<|start|>`
//! (https://github.com/openai/harmony/blob/main/docs/format.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// What a byte-level decoder puts where bytes do not (yet) form a UTF-8 character.
const REPLACEMENT: char = '\u{FFFD}';

/// An incomplete UTF-8 character has at most 3 bytes, and every token decodes to at least one
/// byte, so only the last 3 held-back ids can be part of a character that may still complete.
const MAX_INCOMPLETE_IDS: usize = 3;

/// A loaded tokenizer. Cheap to clone: the vocabulary is shared, so a parser or a stream decoder
/// can own a handle without borrowing.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<tokenizers::Tokenizer>,
    /// The same vocabulary with special-token matching off: text that spells `<|end|>` becomes
    /// ordinary BPE pieces (tiktoken's `encode_ordinary`). Untrusted text goes through this.
    ordinary: Arc<tokenizers::Tokenizer>,
    path: Arc<PathBuf>,
    special_ids: Arc<HashSet<u32>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("special_ids", &self.special_ids.len())
            .finish()
    }
}

impl Tokenizer {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let error = |message: String| Error::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let json = crate::fsutil::read(path)?;
        let mut inner =
            tokenizers::Tokenizer::from_bytes(&json).map_err(|e| error(e.to_string()))?;
        check_added_token_ids(&inner, &json).map_err(error)?;
        // A tokenizer.json may carry truncation or padding for training; either would silently
        // change a prompt's ids.
        inner
            .with_truncation(None)
            .map_err(|e| error(format!("disabling truncation: {e}")))?;
        inner.with_padding(None);
        // Special tokens written in the text must be matched as specials, never BPE'd as text.
        inner.set_encode_special_tokens(false);
        let mut ordinary = inner.clone();
        ordinary.set_encode_special_tokens(true);
        let special_ids = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, _)| id)
            .collect();
        Ok(Tokenizer {
            inner: Arc::new(inner),
            ordinary: Arc::new(ordinary),
            path: Arc::new(path.to_path_buf()),
            special_ids: Arc::new(special_ids),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: String) -> Error {
        Error::Tokenizer {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// Ids for `text`, with special tokens written in it (`<|start|>`) matched as their single
    /// ids. Adds nothing: no BOS, no post-processor template.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(&self.inner, text)
    }

    /// Ids for `text` with nothing matched as a special token: `<|end|>` written in the text is
    /// BPE'd like any other characters. For user, tool and other untrusted text.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(&self.ordinary, text)
    }

    fn encode_with(&self, t: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>> {
        let encoding = t
            .encode_fast(text, false)
            .map_err(|e| self.error(format!("encoding {} bytes of text: {e}", text.len())))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text for `ids`, special tokens spelled out. Ids the tokenizer does not know are skipped
    /// (that is the `tokenizers` crate's behaviour); `id_to_token` tells whether one is known.
    /// Bytes that do not form UTF-8 characters come out as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| self.error(format!("decoding {} ids: {e}", ids.len())))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is an added token marked special (all harmony tokens are).
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// Number of ids, added tokens included. The model's embedding may be larger (gpt-oss pads
    /// to 201088).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id the tokenizer can produce (added tokens included).
    pub fn max_id(&self) -> Option<u32> {
        self.inner.get_vocab(true).into_values().max()
    }

    pub fn decode_stream(&self) -> DecodeStream {
        DecodeStream::new(self.clone())
    }
}

/// The `tokenizers` crate keeps an added token's id from the file only when the added ids
/// continue the model's vocabulary without a gap; otherwise it renumbers them, with no more than
/// a log warning. A prompt would then get wrong ids, so a renumbering is an error here.
fn check_added_token_ids(
    inner: &tokenizers::Tokenizer,
    json: &[u8],
) -> std::result::Result<(), String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        added_tokens: Vec<Added>,
    }
    #[derive(serde::Deserialize)]
    struct Added {
        id: u32,
        content: String,
    }
    let file: File = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    for token in &file.added_tokens {
        let assigned = inner.token_to_id(&token.content);
        if assigned != Some(token.id) {
            return Err(format!(
                "added token {:?} is declared as id {} but loads as {:?}: added ids must \
                 continue the model vocabulary without gaps",
                token.content, token.id, assigned
            ));
        }
    }
    Ok(())
}

/// Turns ids into text one at a time. Text is released only once it forms whole UTF-8
/// characters, so a character whose bytes are split across tokens comes out in one piece.
///
/// Each step decodes the held-back ids together with the last id already released: decoders
/// that treat the first token of a string specially (a leading-space strip, for instance) then
/// see every token mid-string, as they do in `Tokenizer::decode` of the whole sequence.
pub struct DecodeStream {
    tokenizer: Tokenizer,
    /// `ids[..context]` were already released and are kept only as context; the rest are held.
    ids: Vec<u32>,
    context: usize,
    /// Decoded text of `ids[..context]`.
    context_text: String,
}

impl DecodeStream {
    pub fn new(tokenizer: Tokenizer) -> DecodeStream {
        DecodeStream {
            tokenizer,
            ids: Vec::new(),
            context: 0,
            context_text: String::new(),
        }
    }

    /// Adds one id; returns the text that became complete, if any.
    pub fn step(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        if !text.ends_with(REPLACEMENT) {
            return self.release(self.ids.len(), Some(text));
        }
        let held = self.ids.len() - self.context;
        if held <= MAX_INCOMPLETE_IDS {
            return Ok(None);
        }
        // The trailing U+FFFD is either a character that later ids may still complete, confined
        // to the last MAX_INCOMPLETE_IDS ids, or bytes that will never be valid (or a literal
        // U+FFFD). Release what lies before those ids instead of holding without bound.
        self.release(self.ids.len() - MAX_INCOMPLETE_IDS, None)
    }

    /// Releases everything still held, invalid bytes as U+FFFD. Call at the end of a stream.
    pub fn flush(&mut self) -> Result<Option<String>> {
        if self.ids.len() == self.context {
            return Ok(None);
        }
        self.release(self.ids.len(), None)
    }

    /// Releases the text of `ids[context..end]` and keeps `ids[end - 1]` as the next context.
    /// `decoded` is the decode of `ids[..end]` when the caller already has it.
    fn release(&mut self, end: usize, decoded: Option<String>) -> Result<Option<String>> {
        let text = match decoded {
            Some(t) => t,
            None => self.tokenizer.decode(&self.ids[..end])?,
        };
        let new_text = match text.strip_prefix(self.context_text.as_str()) {
            Some(rest) => rest.to_owned(),
            // Context and new ids did not decode independently (the context ended inside a
            // character released lossily); fall back to the new ids on their own.
            None => self.tokenizer.decode(&self.ids[self.context..end])?,
        };
        self.ids.drain(..end - 1);
        self.context = 1;
        self.context_text = self.tokenizer.decode(&self.ids[..1])?;
        Ok((!new_text.is_empty()).then_some(new_text))
    }
}

/// A small byte-level BPE tokenizer for unit tests, with the harmony special tokens at ids that
/// differ from o200k_harmony's, so code that hard-codes real ids fails here.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Tokenizer;
    pub use crate::testing::tokenizer::byte_char;
    use crate::testing::tokenizer::{added_specials, bpe_json, byte_vocab, HARMONY_SPECIALS};

    /// The harmony specials, and a reserved token that is neither text nor structure.
    pub const SPECIALS: [&str; 10] = {
        let mut all = ["<|reserved_1|>"; 10];
        let mut i = 0;
        while i < HARMONY_SPECIALS.len() {
            all[i] = HARMONY_SPECIALS[i];
            i += 1;
        }
        all
    };
    const MERGES: [(&str, &str); 5] =
        [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w"), ("o", "r")];
    /// First special id: right after the 256 bytes and the merged tokens, because the
    /// `tokenizers` crate renumbers added tokens that leave a gap.
    pub const SPECIAL_BASE: u32 = 256 + MERGES.len() as u32;

    pub fn tiny() -> Tokenizer {
        tiny_with_special_base(SPECIAL_BASE).expect("tiny tokenizer loads")
    }

    pub fn tiny_with_special_base(special_base: u32) -> crate::Result<Tokenizer> {
        let mut vocab = byte_vocab();
        for (i, (a, b)) in MERGES.iter().enumerate() {
            vocab.insert(format!("{a}{b}"), (256 + i).into());
        }
        let merges = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
        let added = added_specials(special_base as usize, SPECIALS);
        let json = bpe_json(vocab, merges, added, None);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, json.to_string()).expect("write tokenizer.json");
        Tokenizer::from_file(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{tiny, SPECIALS, SPECIAL_BASE};
    use super::*;

    fn id(t: &Tokenizer, s: &str) -> u32 {
        t.token_id(s).unwrap_or_else(|| panic!("{s} in vocab"))
    }

    #[test]
    fn specials_in_text_are_single_ids_and_no_bos_is_added() {
        let t = tiny();
        let ids = t.encode("<|start|>user<|message|>hello<|end|>").unwrap();
        assert_eq!(ids.first(), Some(&id(&t, "<|start|>")));
        assert_eq!(ids.last(), Some(&id(&t, "<|end|>")));
        assert_eq!(ids.iter().filter(|&&i| i >= SPECIAL_BASE).count(), 3);
        // "hello" BPE'd through the merges he + ll, then o.
        let hello: Vec<u32> = ["hell", "o"].iter().map(|s| id(&t, s)).collect();
        assert!(ids.windows(2).any(|w| w == hello.as_slice()), "{ids:?}");
        assert!(t.encode("").unwrap().is_empty());
    }

    #[test]
    fn decode_round_trips_and_spells_specials() {
        let t = tiny();
        let text = "<|start|>assistant<|channel|>final<|message|>héllo wörld 🦀<|return|>";
        assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
    }

    #[test]
    fn lookups() {
        let t = tiny();
        for (i, s) in SPECIALS.iter().enumerate() {
            assert_eq!(t.token_id(s), Some(SPECIAL_BASE + i as u32));
            assert!(t.is_special(SPECIAL_BASE + i as u32));
        }
        assert!(!t.is_special(id(&t, "hell")));
        assert_eq!(t.token_id("<|nonexistent|>"), None);
        assert_eq!(t.vocab_size(), 256 + 5 + SPECIALS.len());
    }

    #[test]
    fn renumbered_added_tokens_are_refused() {
        let err = super::test_support::tiny_with_special_base(SPECIAL_BASE + 39).unwrap_err();
        assert!(err.to_string().contains("without gaps"), "{err}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let err = Tokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if path.ends_with("tokenizer.json")));
    }

    fn stream_all(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
        let mut s = t.decode_stream();
        let mut out: Vec<String> = ids.iter().filter_map(|&i| s.step(i).unwrap()).collect();
        out.extend(s.flush().unwrap());
        out
    }

    #[test]
    fn stream_holds_split_characters_until_complete() {
        let t = tiny();
        // Every non-ASCII byte is its own token in the tiny vocabulary: é is 2 ids, 🦀 is 4.
        let text = "aé 🦀b";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids.len(), text.len());
        let pieces = stream_all(&t, &ids);
        assert!(
            pieces.iter().all(|p| !p.contains(REPLACEMENT)),
            "{pieces:?}"
        );
        assert_eq!(pieces.concat(), text);
        assert!(pieces.contains(&"🦀".to_string()), "{pieces:?}");
    }

    #[test]
    fn stream_releases_bytes_that_never_form_a_character() {
        let t = tiny();
        // A lone continuation byte, then ASCII: released once the ASCII makes it final.
        let lone = id(&t, &super::test_support::byte_char(0x80).to_string());
        let a = id(&t, "a");
        let pieces = stream_all(&t, &[lone, lone, lone, lone, lone, a]);
        assert_eq!(pieces.concat(), "\u{FFFD}".repeat(5) + "a");
        // A truncated character at the end comes out on flush.
        let lead = id(&t, &super::test_support::byte_char(0xE2).to_string());
        let mut s = t.decode_stream();
        assert_eq!(s.step(a).unwrap().as_deref(), Some("a"));
        assert_eq!(s.step(lead).unwrap(), None);
        assert_eq!(s.flush().unwrap().as_deref(), Some("\u{FFFD}"));
        assert_eq!(s.flush().unwrap(), None);
    }
}
