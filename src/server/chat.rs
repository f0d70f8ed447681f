//! `POST /v1/chat/completions`: messages rendered by `conversation::api`, the reply with
//! `reasoning_content` beside `content`, tool calls in `tool_calls`; SSE chunks when streamed.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::conversation::api::{self, ChatMessage, ChatOptions, Tool};
use crate::conversation::{Delta, Reply, ReplyOptions, ReplyParser};
use crate::harmony::{self, Reasoning};

use super::engine::JobHandle;
use super::error::ApiError;
use super::stream::{self, Generation, Step};
use super::{next_id, unix_now, Shared};

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<Value>,
    pub reasoning_effort: Option<String>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub n: Option<usize>,
    #[serde(flatten)]
    pub generation: Generation,
}

/// A request made ready for the engine.
pub struct Prepared {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: crate::model::SamplingParams,
    pub reply: ReplyOptions,
}

pub fn reasoning(effort: Option<&str>, default: Reasoning) -> Result<Reasoning, ApiError> {
    match effort {
        None => Ok(default),
        // "minimal" (an effort some clients send) is the lowest gpt-oss knows.
        Some("minimal") => Ok(Reasoning::Low),
        Some(e) => e.parse().map_err(|_| {
            ApiError::invalid(
                "reasoning_effort",
                format!("'{e}' is not low, medium or high"),
            )
        }),
    }
}

/// Which tools the model is shown: all for `auto` (the default), none for `none`.
pub fn offered_tools(tools: Vec<Tool>, choice: Option<&Value>) -> Result<Vec<Tool>, ApiError> {
    match choice {
        None => Ok(tools),
        Some(Value::String(s)) if s == "auto" => Ok(tools),
        Some(Value::String(s)) if s == "none" => Ok(Vec::new()),
        Some(other) => Err(ApiError::invalid(
            "tool_choice",
            format!("{other} is not supported: use \"auto\" or \"none\""),
        )),
    }
}

pub fn prepare(
    state: &super::AppState,
    messages: &[ChatMessage],
    chat: ChatOptions,
    max_tokens: Option<usize>,
    sampling: crate::model::SamplingParams,
    stop: Vec<String>,
) -> Result<Prepared, ApiError> {
    let tools = !chat.tools.is_empty();
    let prompt = api::chat_ids(messages, &chat, &state.engine.tokenizer)?;
    let max_tokens = stream::budget(state, prompt.len(), max_tokens)?;
    Ok(Prepared {
        prompt,
        max_tokens,
        sampling,
        reply: ReplyOptions {
            tools,
            stop,
            call_id_prefix: next_id("call_") + "_",
        },
    })
}

/// Submits a prepared chat request: the job, and the parser its tokens go through.
pub fn start(
    state: &super::AppState,
    prepared: Prepared,
) -> Result<(JobHandle, ReplyParser), ApiError> {
    let e = &state.engine;
    let parser = ReplyParser::new(&e.tokenizer, prepared.reply)?;
    let stop_ids = harmony::stop_ids(&e.tokenizer, &e.config.eos_token_ids);
    let handle = stream::submit(
        state,
        prepared.prompt,
        prepared.max_tokens,
        prepared.sampling,
        stop_ids,
    )?;
    Ok((handle, parser))
}

fn parse(state: &Shared, req: ChatCompletionRequest) -> Result<(Prepared, bool, bool), ApiError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n = 1 is supported"));
    }
    let chat = ChatOptions {
        reasoning: reasoning(req.reasoning_effort.as_deref(), state.opts.reasoning)?,
        current_date: state.opts.current_date.clone(),
        identity: None,
        tools: offered_tools(req.tools.unwrap_or_default(), req.tool_choice.as_ref())?,
    };
    let mut generation = req.generation;
    let (sampling, stop) = generation.checked()?;
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let prepared = prepare(state, &req.messages, chat, max_tokens, sampling, stop)?;
    Ok((prepared, generation.stream, generation.usage_in_stream()))
}

pub async fn handle(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatCompletionRequest = super::parse_body(body, state.opts.max_body)?;
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| state.engine.model_name.clone());
    let (prepared, streamed, usage) = parse(&state, req)?;
    let (handle, parser) = start(&state, prepared)?;
    let id = next_id("chatcmpl-");
    if streamed {
        return Ok(sse(handle, parser, id, model, usage));
    }
    let (reply, finished) = stream::collect(handle, parser).await?;
    let (usage, timings) = stream::usage_fields(&finished, Some(reply.reasoning_tokens));
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": unix_now(), "model": model,
        "choices": [{"index": 0, "message": message(&reply),
                     "finish_reason": reply.finish_reason.as_str(), "logprobs": null}],
        "usage": usage,
        "timings": timings,
    }))
    .into_response())
}

fn message(r: &Reply) -> Value {
    let mut m = json!({"role": "assistant", "content": r.content});
    if r.content.is_empty() && !r.tool_calls.is_empty() {
        m["content"] = Value::Null;
    }
    if !r.reasoning.is_empty() {
        m["reasoning_content"] = json!(r.reasoning);
    }
    if !r.tool_calls.is_empty() {
        m["tool_calls"] = r
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    m
}

fn delta_json(d: &Delta) -> Value {
    match d {
        Delta::Reasoning(t) => json!({"reasoning_content": t}),
        Delta::Content(t) => json!({"content": t}),
        Delta::ToolCall { index, id, name } => json!({"tool_calls": [{"index": index, "id": id,
            "type": "function", "function": {"name": name, "arguments": ""}}]}),
        Delta::ToolArguments { index, text } => {
            json!({"tool_calls": [{"index": index, "function": {"arguments": text}}]})
        }
    }
}

fn sse(
    mut handle: JobHandle,
    parser: ReplyParser,
    id: String,
    model: String,
    include_usage: bool,
) -> Response {
    stream::sse(move |events| async move {
        let created = unix_now();
        let head = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model});
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut v = head.clone();
            v["choices"] = json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
            v
        };
        events
            .json(&chunk(json!({"role": "assistant", "content": ""}), None))
            .await?;
        let mut parser = Some(parser);
        loop {
            let (deltas, done) = match stream::next_step(&mut handle, &mut parser).await {
                Ok(Step::Deltas(deltas)) => (deltas, None),
                Ok(Step::Done(done, deltas)) => (deltas, Some(*done)),
                Err(e) => return events.error_then_done(&e).await,
            };
            for d in &deltas {
                events.json(&chunk(delta_json(d), None)).await?;
            }
            if let Some((reply, finished)) = done {
                events
                    .json(&chunk(json!({}), Some(reply.finish_reason.as_str())))
                    .await?;
                if include_usage {
                    let reasoning = Some(reply.reasoning_tokens);
                    events
                        .json(&stream::usage_chunk(&head, &finished, reasoning))
                        .await?;
                }
                return events.done().await;
            }
        }
    })
}
