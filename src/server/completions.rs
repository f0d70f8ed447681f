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

use super::engine::EngineEvent;
use super::error::ApiError;
use super::stream::{self, Stop};
use super::{next_id, unix_now, Shared};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: Prompt,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
}

pub async fn handle(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> Response {
    run(state, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(state: Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let req: CompletionRequest = super::parse_body(body, state.opts.max_body)?;
    if req.stream {
        return Err(ApiError::invalid(
            "stream",
            "streaming is supported on /v1/chat/completions; not here",
        ));
    }
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
    let sampling = stream::sampling(req.temperature, req.top_p, req.seed)?;
    let stops = stream::stop_list(req.stop)?;
    let stop_ids = e.config.eos_token_ids.clone();
    let mut handle = stream::submit(&state, prompt, max_tokens, sampling, stop_ids.clone())?;
    let mut decoder = e.tokenizer.decode_stream();
    let mut text = String::new();
    let mut finish = "length";
    let finished = loop {
        match handle.events.recv().await {
            Some(EngineEvent::Token(id)) => {
                if finish == "stop" {
                    continue;
                }
                if stop_ids.contains(&id) {
                    finish = "stop";
                    continue;
                }
                if let Some(t) = decoder.step(id)? {
                    text.push_str(&t);
                }
                if let Some(at) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
                    text.truncate(at);
                    finish = "stop";
                    handle
                        .cancel
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Some(EngineEvent::Started { .. }) => {}
            Some(EngineEvent::Done(f)) => break f,
            Some(EngineEvent::Failed(m)) => return Err(ApiError::Engine(m)),
            None => return Err(ApiError::Engine("the engine stopped".into())),
        }
    };
    if finish != "stop" {
        if let Some(t) = decoder.flush()? {
            text.push_str(&t);
        }
    }
    let model = req.model.unwrap_or_else(|| e.model_name.clone());
    Ok(Json(json!({
        "id": next_id("cmpl-"), "object": "text_completion", "created": unix_now(), "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
        "usage": stream::usage(&finished),
        "timings": stream::timings(&finished),
    }))
    .into_response())
}
