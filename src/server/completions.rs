//! `POST /v1/completions`: raw text continuation, no template. The prompt is the client's own
//! whole prompt, so control tokens written in it are matched (as `generate --raw` does); a
//! list of token ids is taken as is.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use std::sync::atomic::Ordering;

use crate::conversation::StopMatcher;
use crate::tokenizer::DecodeStream;

use super::engine::{EngineEvent, Finished, JobHandle};
use super::error::ApiError;
use super::stream::{self, Generation};
use super::{next_id, unix_now, Shared};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Prompt,
    pub max_tokens: Option<usize>,
    #[serde(flatten)]
    pub generation: Generation,
}

/// Generated ids to text: stop ids end it and are not text; stop sequences cut it.
struct TextReply {
    decoder: DecodeStream,
    stop: StopMatcher,
    stop_ids: Vec<u32>,
    stopped: bool,
}

impl TextReply {
    fn push(&mut self, id: u32) -> Result<String, ApiError> {
        if self.stopped {
            return Ok(String::new());
        }
        if self.stop_ids.contains(&id) {
            self.stopped = true;
            return self.flush();
        }
        let text = self.decoder.step(id)?.unwrap_or_default();
        let released = self.stop.push(&text);
        self.stopped = self.stop.hit();
        Ok(released)
    }

    fn flush(&mut self) -> Result<String, ApiError> {
        if self.stop.hit() {
            return Ok(String::new());
        }
        let rest = self.decoder.flush()?.unwrap_or_default();
        let mut text = self.stop.push(&rest);
        text.push_str(&self.stop.flush());
        Ok(text)
    }

    fn finish_reason(&self) -> &'static str {
        if self.stopped {
            "stop"
        } else {
            "length"
        }
    }
}

pub async fn handle(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = super::parse_body(body, state.opts.max_body)?;
    let e = &state.engine;
    let prompt = match req.prompt {
        Prompt::Text(t) => e.tokenizer.encode(&t)?,
        Prompt::Ids(ids) => {
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= e.config.vocab_size) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!("token id {bad} is outside the vocabulary"),
                ));
            }
            ids
        }
    };
    let max_tokens = stream::budget(&state, prompt.len(), req.max_tokens.or(Some(16)))?;
    let mut generation = req.generation;
    let (sampling, stop) = generation.checked()?;
    let stop_ids = e.config.eos_token_ids.clone();
    let mut text = TextReply {
        decoder: e.tokenizer.decode_stream(),
        stop: StopMatcher::new(stop),
        stop_ids: stop_ids.clone(),
        stopped: false,
    };
    let mut handle = stream::submit(&state, prompt, max_tokens, sampling, stop_ids)?;
    let id = next_id("cmpl-");
    let model = req.model.unwrap_or_else(|| e.model_name.clone());
    if generation.stream {
        let usage = generation.usage_in_stream();
        return Ok(stream::sse(move |events| async move {
            let created = unix_now();
            let head = json!({"id": id, "object": "text_completion", "created": created,
                "model": model});
            let chunk = |t: &str, finish: Option<&str>| {
                let mut v = head.clone();
                v["choices"] =
                    json!([{"index": 0, "text": t, "finish_reason": finish, "logprobs": null}]);
                v
            };
            loop {
                match next_text(&mut handle, &mut text).await {
                    Ok(TextStep::Text(t)) => events.json(&chunk(&t, None)).await?,
                    Ok(TextStep::Done(rest, finished)) => {
                        events
                            .json(&chunk(&rest, Some(text.finish_reason())))
                            .await?;
                        if usage {
                            events
                                .json(&stream::usage_chunk(&head, &finished, None))
                                .await?;
                        }
                        return events.done().await;
                    }
                    Err(e) => return events.error_then_done(&e).await,
                }
            }
        }));
    }
    let mut all = String::new();
    let finished = loop {
        match next_text(&mut handle, &mut text).await? {
            TextStep::Text(t) => all.push_str(&t),
            TextStep::Done(rest, f) => {
                all.push_str(&rest);
                break f;
            }
        }
    };
    let (usage, timings) = stream::usage_fields(&finished, None);
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": unix_now(), "model": model,
        "choices": [{"index": 0, "text": all, "finish_reason": text.finish_reason(),
                     "logprobs": null}],
        "usage": usage,
        "timings": timings,
    }))
    .into_response())
}

enum TextStep {
    Text(String),
    /// The rest of the text and the engine's numbers.
    Done(String, Finished),
}

async fn next_text(handle: &mut JobHandle, text: &mut TextReply) -> Result<TextStep, ApiError> {
    loop {
        match handle.events.recv().await {
            Some(EngineEvent::Token(id)) => {
                let t = text.push(id)?;
                if text.stopped {
                    handle.cancel.store(true, Ordering::SeqCst);
                }
                if !t.is_empty() {
                    return Ok(TextStep::Text(t));
                }
            }
            Some(EngineEvent::Started { .. }) => {}
            Some(EngineEvent::Done(f)) => return Ok(TextStep::Done(text.flush()?, f)),
            Some(EngineEvent::Failed(m)) => return Err(ApiError::Engine(m)),
            None => return Err(ApiError::Engine("the engine stopped".into())),
        }
    }
}
