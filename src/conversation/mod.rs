//! Whole conversations in harmony: OpenAI-style messages in (`api`), harmony messages rendered
//! to token ids (`render`), and the model's output parsed back into final text, reasoning and
//! tool calls (`reply`). The server, `render` and `chat` share this one conversion.
//!
//! Text from users, tools and clients is only ever encoded as ordinary text: special tokens are
//! inserted as ids by the renderer, never matched in text, so typing `<|end|>` cannot end a
//! message.

pub mod api;
pub mod render;
pub mod reply;
mod typescript;

pub use api::{ChatMessage, ChatOptions, Tool};
pub use render::{Author, Content, DeveloperContent, FunctionTool, Message, Piece, Role};
pub use render::{SystemContent, FUNCTIONS};
pub use reply::{Delta, FinishReason, Reply, ReplyOptions, ReplyParser, StopMatcher, ToolCall};

/// What is wrong with a conversation a client sent; a client error (HTTP 400), never a bug.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// `field` names the offending part the way the OpenAI API does (`messages[2].content`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    #[error(transparent)]
    Tokenizer(#[from] crate::Error),
}

impl ConversationError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConversationError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
