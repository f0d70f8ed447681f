//! Errors as the OpenAI API writes them: a status and `{"error": {message, type, param, code}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::conversation::ConversationError;

use super::engine::SubmitError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the client must change (400).
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("request body over the limit of {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Busy(#[from] SubmitError),
    /// The engine failed (a GPU error): not the client's fault, nor the model output's.
    #[error("{0}")]
    Engine(String),
}

impl ApiError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::Invalid { field, message } => ApiError::Invalid {
                message: format!("{field}: {message}"),
                param: Some(field),
                code: None,
            },
            ConversationError::Tokenizer(e) => ApiError::Engine(e.to_string()),
        }
    }
}

/// Library errors inside a request (tokenizer, decoding) are the server's, never the client's.
impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        ApiError::Engine(e.to_string())
    }
}

impl ApiError {
    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        Option<String>,
        Option<&'static str>,
    ) {
        match self {
            ApiError::Invalid { param, code, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                param.clone(),
                *code,
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", None, None),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                None,
                None,
            ),
            ApiError::Busy(SubmitError::QueueFull(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                Some("queue_full"),
            ),
            ApiError::Busy(SubmitError::Stopped) | ApiError::Engine(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                None,
            ),
        }
    }

    /// The JSON body, also used as an SSE error event.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, param, code) = self.parts();
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.parts().0;
        (status, axum::Json(self.body())).into_response()
    }
}
