//! `POST /v1/responses`, stateless: the whole conversation comes in `input` (messages,
//! reasoning items, function calls and their outputs); the reply is output items (reasoning,
//! message, function calls). Converted to chat messages and run through the chat path.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::conversation::api::{
    ChatMessage, ChatOptions, FunctionCallIn, FunctionDef, MessageContent, Tool, ToolCallIn,
};
use crate::conversation::{FinishReason, Reply, ToolCall};

use super::chat;
use super::engine::Finished;
use super::error::ApiError;
use super::stream;
use super::{next_id, unix_now, Shared};

#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    pub model: Option<String>,
    pub input: Input,
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Vec<ResponsesTool>,
    pub tool_choice: Option<Value>,
    pub reasoning: Option<ReasoningParam>,
    pub max_output_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    #[serde(default)]
    pub stream: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

#[derive(Debug, Deserialize)]
pub struct ReasoningParam {
    pub effort: Option<String>,
}

/// The Responses API writes function tools flat: `{type, name, description, parameters}`.
#[derive(Debug, Deserialize)]
pub struct ResponsesTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Input items as chat messages: reasoning and function calls attach to the assistant message
/// they belong to (the one that follows them, or a new one).
fn to_messages(input: Input, instructions: Option<String>) -> Result<Vec<ChatMessage>, ApiError> {
    let mut out: Vec<ChatMessage> = instructions
        .into_iter()
        .map(|i| ChatMessage::text("system", i))
        .collect();
    let items = match input {
        Input::Text(t) => vec![json!({"role": "user", "content": t})],
        Input::Items(items) => items,
    };
    // An assistant turn being assembled from reasoning / function_call items.
    let mut pending: Option<ChatMessage> = None;
    let assistant = |p: &mut Option<ChatMessage>| -> ChatMessage {
        p.take().unwrap_or_else(|| ChatMessage {
            content: None,
            ..ChatMessage::text("assistant", String::new())
        })
    };
    for (i, item) in items.iter().enumerate() {
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let field = format!("input[{i}]");
        match kind {
            "message" => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                let text = text_of(item.get("content").unwrap_or(&Value::Null));
                if role == "assistant" {
                    let mut m = assistant(&mut pending);
                    m.content = Some(MessageContent::Text(text));
                    out.push(m);
                } else {
                    if let Some(p) = pending.take() {
                        out.push(p);
                    }
                    out.push(ChatMessage::text(role, text));
                }
            }
            "reasoning" => {
                let text = item
                    .get("content")
                    .map(text_of)
                    .filter(|t| !t.is_empty())
                    .or_else(|| item.get("summary").map(text_of))
                    .unwrap_or_default();
                let mut m = assistant(&mut pending);
                let r = m.reasoning_content.take().unwrap_or_default();
                m.reasoning_content = Some(r + &text);
                pending = Some(m);
            }
            "function_call" => {
                let name = item.get("name").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(format!("{field}.name"), "a function_call needs a name")
                })?;
                let mut m = assistant(&mut pending);
                m.tool_calls.get_or_insert_with(Vec::new).push(ToolCallIn {
                    id: item
                        .get("call_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    function: FunctionCallIn {
                        name: name.to_owned(),
                        arguments: item.get("arguments").cloned(),
                    },
                });
                pending = Some(m);
            }
            "function_call_output" => {
                if let Some(p) = pending.take() {
                    out.push(p);
                }
                let output = item.get("output").map(text_of).unwrap_or_default();
                out.push(ChatMessage {
                    tool_call_id: item
                        .get("call_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    ..ChatMessage::text("tool", output)
                });
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{field}.type"),
                    format!("'{other}' is not supported"),
                ))
            }
        }
    }
    if let Some(p) = pending.take() {
        out.push(p);
    }
    Ok(out)
}

fn tools(list: Vec<ResponsesTool>) -> Result<Vec<Tool>, ApiError> {
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    format!("'{}' is not supported (function only)", t.kind),
                ));
            }
            Ok(Tool {
                kind: t.kind,
                function: FunctionDef {
                    name: t.name.unwrap_or_default(),
                    description: t.description,
                    parameters: t.parameters,
                },
            })
        })
        .collect()
}

pub async fn handle(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ResponsesRequest = super::parse_body(body, state.opts.max_body)?;
    let effort = req.reasoning.as_ref().and_then(|r| r.effort.as_deref());
    let opts = ChatOptions {
        reasoning: chat::reasoning(effort, state.opts.reasoning)?,
        current_date: state.opts.current_date.clone(),
        identity: None,
        tools: chat::offered_tools(tools(req.tools)?, req.tool_choice.as_ref())?,
    };
    let messages = to_messages(req.input, req.instructions)?;
    let sampling = stream::sampling(req.temperature, req.top_p, None)?;
    let prepared = chat::prepare(
        &state,
        &messages,
        opts,
        req.max_output_tokens,
        sampling,
        Vec::new(),
    )?;
    let (handle, parser) = chat::start(&state, prepared)?;
    let model = req.model.unwrap_or_else(|| state.engine.model_name.clone());
    let id = next_id("resp_");
    if req.stream {
        return Ok(super::responses_stream::sse(handle, parser, id, model));
    }
    let (reply, finished) = stream::collect(handle, parser).await?;
    let status = status(&reply);
    let mut output = Vec::new();
    if !reply.reasoning.is_empty() {
        output.push(reasoning_item(&next_id("rs_"), &reply.reasoning));
    }
    if !reply.content.is_empty() {
        output.push(message_item(&next_id("msg_"), &reply.content, status));
    }
    for c in &reply.tool_calls {
        output.push(function_call_item(&next_id("fc_"), c, status));
    }
    Ok(Json(response(&id, &model, &reply, &finished, output)).into_response())
}

pub fn status(reply: &Reply) -> &'static str {
    if reply.finish_reason == FinishReason::Length {
        "incomplete"
    } else {
        "completed"
    }
}

pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [],
           "content": [{"type": "reasoning_text", "text": text}]})
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "role": "assistant", "status": status,
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

pub fn function_call_item(id: &str, call: &ToolCall, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call.id, "name": call.name,
           "arguments": call.arguments, "status": status})
}

/// The response object, for the reply as a whole.
pub fn response(id: &str, model: &str, reply: &Reply, f: &Finished, output: Vec<Value>) -> Value {
    let status = status(reply);
    json!({
        "id": id, "object": "response", "created_at": unix_now(), "model": model,
        "status": status,
        "incomplete_details": if status == "completed" { Value::Null } else { json!({"reason": "max_output_tokens"}) },
        "output": output,
        "output_text": reply.content,
        "usage": {
            "input_tokens": f.prompt_tokens,
            "input_tokens_details": {"cached_tokens": f.reused_tokens},
            "output_tokens": f.generated,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": f.prompt_tokens + f.generated,
        },
        "timings": stream::timings(f),
    })
}
