//! What fits: a context in the model and on the adapter, a prompt in the vocabulary, a prompt
//! and its answer in a context. Every caller (the CLI, the server, the generator, the forward
//! pass) checks through these, so each rule and its message exist once. Errors name the
//! library's parameters (`ctx`, `max_tokens`, `prompt`); the CLI shows them as its flags.

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// `ctx` must lie in 1..=the model's maximum positions.
pub fn check_ctx(c: &ModelConfig, ctx: usize) -> Result<()> {
    if ctx == 0 || ctx > c.max_position_embeddings {
        return Err(Error::argument(
            "ctx",
            format!(
                "{ctx} is outside 1..={} (the model's maximum positions)",
                c.max_position_embeddings
            ),
        ));
    }
    Ok(())
}

/// A context of `ctx` positions on an adapter whose largest binding is `limit` bytes: the RoPE
/// table and each layer's K (or V), with `kv_element_bytes` per element and prefill steps of
/// `chunk` tokens, must each fit one binding. Checked before anything is allocated, so a huge
/// `ctx` fails with its reason instead of aborting on an allocation.
pub fn check_ctx_on_adapter(
    c: &ModelConfig,
    ctx: usize,
    chunk: usize,
    kv_element_bytes: u64,
    limit: u64,
) -> Result<()> {
    check_ctx(c, ctx)?;
    let rope_bytes = (ctx as u64).checked_mul(c.head_dim as u64 * 4);
    if ctx > u32::MAX as usize || rope_bytes.is_none_or(|b| b > limit) {
        return Err(Error::argument(
            "ctx",
            format!(
                "{ctx} positions need a RoPE table of {} bytes, more than this adapter's \
                 largest binding ({limit} bytes)",
                rope_bytes.map_or_else(|| "more than 2^64".into(), |b| b.to_string())
            ),
        ));
    }
    let per_position = c.kv_dim() as u64 * kv_element_bytes;
    let positions = (0..c.num_hidden_layers)
        .map(|l| crate::model::kv_cache::capacity(c, l, ctx, chunk))
        .max()
        .unwrap_or(0) as u64;
    if positions.saturating_mul(per_position) > limit {
        return Err(Error::argument(
            "ctx",
            format!(
                "a context of {ctx} needs {} bytes per layer for its KV cache, over this \
                 adapter's largest binding ({limit} bytes); at most {} positions fit",
                positions.saturating_mul(per_position),
                limit / per_position.max(1)
            ),
        ));
    }
    Ok(())
}

/// The first id of `ids` outside the vocabulary, if any.
pub fn out_of_vocabulary(c: &ModelConfig, ids: &[u32]) -> Option<u32> {
    ids.iter().copied().find(|&id| id as usize >= c.vocab_size)
}

/// A prompt must have tokens, each inside the vocabulary.
pub fn check_prompt(c: &ModelConfig, ids: &[u32]) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::argument("prompt", "the prompt has no tokens"));
    }
    if let Some(bad) = out_of_vocabulary(c, ids) {
        return Err(Error::argument(
            "prompt",
            format!(
                "token id {bad} is outside the vocabulary (size {})",
                c.vocab_size
            ),
        ));
    }
    Ok(())
}

/// How many tokens may be generated after a prompt of `prompt_tokens` in a context of `ctx`:
/// `max_tokens`, or all the room left when None. Prompt plus answer must fit, and a prompt
/// that fills the context leaves room only for an answer of no tokens (prefill alone).
pub fn answer_tokens(
    c: &ModelConfig,
    ctx: usize,
    prompt_tokens: usize,
    max_tokens: Option<usize>,
) -> Result<usize> {
    if prompt_tokens > ctx || (prompt_tokens == ctx && max_tokens != Some(0)) {
        return Err(Error::argument(
            "ctx",
            format!(
                "the prompt ({prompt_tokens} tokens) leaves no room in the context of {ctx} \
                 (raise ctx, at most {})",
                c.max_position_embeddings
            ),
        ));
    }
    let room = ctx - prompt_tokens;
    match max_tokens {
        None => Ok(room),
        Some(n) if n > room => Err(Error::argument(
            "max_tokens",
            format!(
                "the prompt ({prompt_tokens} tokens) plus max_tokens {n} exceeds the context of \
                 {ctx} (raise ctx, at most {}, or lower max_tokens to {room} or less)",
                c.max_position_embeddings
            ),
        )),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        let mut c = crate::model::synthetic::preset("20b").unwrap();
        c.max_position_embeddings = 100;
        c.vocab_size = 10;
        c
    }

    #[test]
    fn ctx_must_be_within_the_model() {
        let c = config();
        assert!(check_ctx(&c, 0).is_err());
        assert!(check_ctx(&c, 101).is_err());
        assert!(check_ctx(&c, 100).is_ok());
    }

    #[test]
    fn prompts_need_tokens_inside_the_vocabulary() {
        let c = config();
        assert!(check_prompt(&c, &[]).is_err());
        assert!(check_prompt(&c, &[1, 10]).is_err());
        assert_eq!(out_of_vocabulary(&c, &[1, 12, 10]), Some(12));
        assert!(check_prompt(&c, &[0, 9]).is_ok());
    }

    #[test]
    fn the_answer_gets_the_room_the_prompt_leaves() {
        let c = config();
        assert_eq!(answer_tokens(&c, 50, 20, None).unwrap(), 30);
        assert_eq!(answer_tokens(&c, 50, 20, Some(30)).unwrap(), 30);
        assert!(answer_tokens(&c, 50, 20, Some(31)).is_err());
        assert!(answer_tokens(&c, 50, 50, None).is_err());
        assert!(answer_tokens(&c, 50, 50, Some(1)).is_err());
        assert_eq!(answer_tokens(&c, 50, 50, Some(0)).unwrap(), 0);
        assert!(answer_tokens(&c, 50, 51, Some(0)).is_err());
    }
}
