//! `oss-wgpu serve`: an OpenAI-compatible HTTP server (axum) in front of the [`engine`].
//!
//! Routes: `POST /v1/chat/completions` (SSE or not), `POST /v1/completions`, `POST
//! /v1/responses` (stateless), `GET /v1/models`, `GET /health`. Requests are parsed here and
//! become token-id jobs for the engine thread; its ids are turned back into API replies by
//! `conversation::reply`. Every failure a client can cause is a 4xx with an OpenAI-style body;
//! model output, however malformed or cut, is always a reply.

pub mod chat;
pub mod completions;
pub mod engine;
pub mod error;
pub mod responses;
mod responses_stream;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::harmony::Reasoning;
use engine::Engine;
use error::ApiError;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub addr: SocketAddr,
    /// Bearer token every /v1 request must carry, when set.
    pub api_key: Option<String>,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// `Current date:` of the system message; none when `None`.
    pub current_date: Option<String>,
    /// Reasoning effort when a request names none.
    pub reasoning: Reasoning,
}

pub struct AppState {
    pub engine: Engine,
    pub opts: ServerOptions,
    pub created: u64,
}

pub type Shared = Arc<AppState>;

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh id for responses and tool calls (unique within a server's life).
pub fn next_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n:04x}", unix_now())
}

pub fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/responses", post(responses::handle))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.opts.max_body))
        .with_state(state)
}

/// Serves until the process ends. Prints the bound address on stdout (tests read it).
pub async fn serve(engine: Engine, opts: ServerOptions) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState {
        engine,
        opts,
        created: unix_now(),
    });
    println!("listening on http://{addr}");
    axum::serve(listener, router(state)).await
}

async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.opts.api_key {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

async fn health(State(state): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "model": state.engine.model_name,
                "queued": state.engine.waiting()}))
}

async fn models(State(state): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({"object": "list", "data": [{
        "id": state.engine.model_name, "object": "model", "created": state.created,
        "owned_by": "oss-wgpu", "max_model_len": state.engine.ctx}]}))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("{} {}", req.method(), req.uri().path()))
}

/// The request body as JSON of type `T`, or the 4xx that says why not.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    max_body: usize,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(max_body)
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid {
        message: format!("the body is not a valid request: {e}"),
        param: None,
        code: None,
    })
}
