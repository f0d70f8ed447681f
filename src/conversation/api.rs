//! OpenAI chat messages (as `/v1/chat/completions` takes them) to harmony messages:
//!
//! - `system` and `developer` messages become the developer message's instructions (harmony's
//!   system message is the model's own: identity, dates, reasoning effort, channels);
//! - `tools` become the `functions` namespace of the developer message;
//! - an assistant's `reasoning_content` becomes an analysis message, its `content` the final
//!   message (commentary when it came with tool calls: a preamble), each tool call a commentary
//!   message to `functions.NAME` with `<|constrain|>json`, ending in `<|call|>`;
//! - a tool result becomes a message from `functions.NAME` to the assistant, the name found
//!   through its `tool_call_id`.

use serde::Deserialize;
use serde_json::Value;

use crate::harmony::Reasoning;
use crate::tokenizer::Tokenizer;

use super::render::{self, drop_finished_analysis, Author, Content, Message, Piece, Role};
use super::render::{DeveloperContent, FunctionTool, SystemContent, FUNCTIONS};
use super::ConversationError;

#[derive(Clone, Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<MessageContent>,
    pub name: Option<String>,
    pub tool_calls: Option<Vec<ToolCallIn>>,
    pub tool_call_id: Option<String>,
    /// The reasoning of an earlier assistant turn, as this server returns it (`reasoning` is
    /// the name some clients use).
    #[serde(default, alias = "reasoning")]
    pub reasoning_content: Option<String>,
}

impl ChatMessage {
    /// A message of plain text from `role`.
    pub fn text(role: &str, text: String) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: Some(MessageContent::Text(text)),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            reasoning_content: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ToolCallIn {
    pub id: Option<String>,
    pub function: FunctionCallIn,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FunctionCallIn {
    pub name: String,
    /// A JSON string per the API; an object is accepted and written as JSON.
    pub arguments: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

/// Everything besides the messages that shapes the prompt.
#[derive(Clone, Debug, Default)]
pub struct ChatOptions {
    pub reasoning: Reasoning,
    /// `YYYY-MM-DD` for the system message; none when `None`.
    pub current_date: Option<String>,
    /// Replaces harmony's default identity line.
    pub identity: Option<String>,
    /// Offered to the model (empty for `tool_choice: "none"`).
    pub tools: Vec<Tool>,
}

fn content_text(c: &Option<MessageContent>, field: &str) -> Result<String, ConversationError> {
    match c {
        None => Ok(String::new()),
        Some(MessageContent::Text(t)) => Ok(t.clone()),
        Some(MessageContent::Parts(parts)) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                match (p.kind.as_str(), &p.text) {
                    ("text" | "input_text" | "output_text", Some(t)) => out.push_str(t),
                    (kind, _) => {
                        return Err(ConversationError::invalid(
                            format!("{field}[{i}]"),
                            format!("content part type '{kind}' is not supported (text only)"),
                        ))
                    }
                }
            }
            Ok(out)
        }
    }
}

fn arguments_text(a: &Option<Value>) -> String {
    match a {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn function_tools(tools: &[Tool]) -> Result<Vec<FunctionTool>, ConversationError> {
    let mut out: Vec<FunctionTool> = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return Err(ConversationError::invalid(
                format!("tools[{i}].type"),
                format!("'{}' is not supported (function only)", t.kind),
            ));
        }
        let name = &t.function.name;
        // The name becomes header text after `to=functions.`: anything but a plain identifier
        // would change how the header parses.
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ConversationError::invalid(
                format!("tools[{i}].function.name"),
                format!("'{name}' must be letters, digits, '_' or '-'"),
            ));
        }
        if out.iter().any(|f| &f.name == name) {
            return Err(ConversationError::invalid(
                format!("tools[{i}].function.name"),
                format!("'{name}' is defined twice"),
            ));
        }
        out.push(FunctionTool {
            name: name.clone(),
            description: t.function.description.clone().unwrap_or_default(),
            parameters: t.function.parameters.clone(),
        });
    }
    Ok(out)
}

/// The harmony conversation for `messages`, reasoning of finished turns dropped.
pub fn to_harmony(
    messages: &[ChatMessage],
    opts: &ChatOptions,
) -> Result<Vec<Message>, ConversationError> {
    let mut out = to_harmony_all(messages, opts)?;
    drop_finished_analysis(&mut out);
    Ok(out)
}

/// The harmony conversation for `messages` with every reasoning message kept.
pub fn to_harmony_all(
    messages: &[ChatMessage],
    opts: &ChatOptions,
) -> Result<Vec<Message>, ConversationError> {
    let mut instructions: Vec<String> = Vec::new();
    let mut body: Vec<Message> = Vec::new();
    // tool_call_id -> function name, from the assistant messages seen so far.
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let field = format!("messages[{i}].content");
        match m.role.as_str() {
            "system" | "developer" => instructions.push(content_text(&m.content, &field)?),
            "user" => body.push(Message::text(Role::User, content_text(&m.content, &field)?)),
            "assistant" => {
                let tool_calls = m.tool_calls.as_deref().unwrap_or(&[]);
                if let Some(r) = m.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    body.push(Message::text(Role::Assistant, r).with_channel("analysis"));
                }
                let text = content_text(&m.content, &field)?;
                if !text.is_empty() {
                    let channel = if tool_calls.is_empty() {
                        "final"
                    } else {
                        "commentary"
                    };
                    body.push(Message::text(Role::Assistant, text).with_channel(channel));
                }
                for (j, call) in tool_calls.iter().enumerate() {
                    let name = &call.function.name;
                    if name.is_empty() {
                        return Err(ConversationError::invalid(
                            format!("messages[{i}].tool_calls[{j}].function.name"),
                            "empty",
                        ));
                    }
                    if let Some(id) = &call.id {
                        calls.push((id.clone(), name.clone()));
                    }
                    body.push(Message {
                        recipient: Some(format!("{FUNCTIONS}.{name}")),
                        content_type: Some(format!("{}json", crate::harmony::CONSTRAIN)),
                        ..Message::text(Role::Assistant, arguments_text(&call.function.arguments))
                            .with_channel("commentary")
                    });
                }
            }
            "tool" | "function" => {
                let by_id = m.tool_call_id.as_ref().and_then(|id| {
                    calls
                        .iter()
                        .rev()
                        .find(|(c, _)| c == id)
                        .map(|(_, n)| n.clone())
                });
                let Some(name) = by_id.or_else(|| m.name.clone()) else {
                    return Err(ConversationError::invalid(
                        format!("messages[{i}].tool_call_id"),
                        "matches no earlier assistant tool call, and the message has no name",
                    ));
                };
                body.push(Message {
                    author: Author {
                        role: Role::Tool,
                        name: Some(format!("{FUNCTIONS}.{name}")),
                    },
                    recipient: Some("assistant".to_owned()),
                    ..Message::text(Role::Tool, content_text(&m.content, &field)?)
                        .with_channel("commentary")
                });
            }
            other => {
                return Err(ConversationError::invalid(
                    format!("messages[{i}].role"),
                    format!("'{other}' is not one of system, developer, user, assistant, tool"),
                ))
            }
        }
    }

    let tools = function_tools(&opts.tools)?;
    let mut out = vec![Message::new(
        Role::System,
        Content::System(SystemContent {
            identity: opts
                .identity
                .clone()
                .unwrap_or_else(|| crate::harmony::DEFAULT_IDENTITY.to_owned()),
            current_date: opts.current_date.clone(),
            reasoning: opts.reasoning,
            ..SystemContent::default()
        }),
    )];
    if !instructions.is_empty() || !tools.is_empty() {
        out.push(Message::new(
            Role::Developer,
            Content::Developer(DeveloperContent {
                instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
                tools,
            }),
        ));
    }
    out.extend(body);
    Ok(out)
}

/// The prompt pieces for a chat request, ending with `<|start|>assistant`.
pub fn render_chat(
    messages: &[ChatMessage],
    opts: &ChatOptions,
) -> Result<Vec<Piece>, ConversationError> {
    render::render_for_completion(&to_harmony(messages, opts)?)
}

/// The prompt ids for a chat request.
pub fn chat_ids(
    messages: &[ChatMessage],
    opts: &ChatOptions,
    tokenizer: &Tokenizer,
) -> Result<Vec<u32>, ConversationError> {
    render::to_ids(&render_chat(messages, opts)?, tokenizer)
}
