//! What every generating endpoint shares: limits and sampling from the request, submitting the
//! job, reading its events into a reply, and the SSE stream that carries it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::conversation::{Delta, Reply, ReplyParser};
use crate::model::SamplingParams;

use super::engine::{EngineEvent, Finished, Job, JobHandle};
use super::error::ApiError;
use super::AppState;

/// The completion budget: the request's max_tokens (checked against the server's limit and
/// the context), else whatever the context leaves, up to the server's limit.
pub fn budget(
    state: &AppState,
    prompt: usize,
    requested: Option<usize>,
) -> Result<usize, ApiError> {
    let e = &state.engine;
    if prompt == 0 {
        return Err(ApiError::invalid("messages", "the prompt is empty"));
    }
    if prompt >= e.ctx {
        return Err(ApiError::Invalid {
            message: format!(
                "the prompt is {prompt} tokens; this server's context is {} tokens",
                e.ctx
            ),
            param: Some("messages".into()),
            code: Some("context_length_exceeded"),
        });
    }
    let room = e.ctx - prompt;
    match requested {
        Some(0) => Err(ApiError::invalid("max_tokens", "must be at least 1")),
        Some(n) if n > e.max_tokens => Err(ApiError::invalid(
            "max_tokens",
            format!("{n} is over this server's limit of {}", e.max_tokens),
        )),
        Some(n) if n > room => Err(ApiError::Invalid {
            message: format!(
                "the prompt ({prompt} tokens) plus max_tokens {n} exceeds the context of {}",
                e.ctx
            ),
            param: Some("max_tokens".into()),
            code: Some("context_length_exceeded"),
        }),
        Some(n) => Ok(n),
        None => Ok(room.min(e.max_tokens)),
    }
}

pub fn sampling(
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
) -> Result<SamplingParams, ApiError> {
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature", "must be between 0 and 2"));
    }
    let top_p = top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p", "must be in (0, 1]"));
    }
    let seed = match seed {
        Some(s) => (s ^ (s >> 32)) as u32,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0),
    };
    Ok(SamplingParams {
        temperature,
        top_k: 0,
        top_p,
        seed,
    })
}

/// The fields chat and text completions share: sampling, stop sequences and streaming.
#[derive(Debug, serde::Deserialize)]
pub struct Generation {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl Generation {
    /// The sampling parameters and stop sequences, checked.
    pub fn checked(&mut self) -> Result<(SamplingParams, Vec<String>), ApiError> {
        let sampling = sampling(self.temperature, self.top_p, self.seed)?;
        Ok((sampling, stop_list(self.stop.take())?))
    }

    /// Whether a stream ends with a usage chunk.
    pub fn usage_in_stream(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// `stop`: a string or a list of up to 4.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

pub fn stop_list(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
    let list = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if list.len() > 4 {
        return Err(ApiError::invalid("stop", "at most 4 stop sequences"));
    }
    Ok(list)
}

pub fn submit(
    state: &AppState,
    prompt: Vec<u32>,
    max_tokens: usize,
    sampling: SamplingParams,
    stop_ids: Vec<u32>,
) -> Result<JobHandle, ApiError> {
    let (job, handle) = Job::new(prompt, max_tokens, sampling, stop_ids);
    state.engine.submit(job)?;
    Ok(handle)
}

/// One step of a job as the endpoints see it.
pub enum Step {
    Deltas(Vec<Delta>),
    Done(Box<(Reply, Finished)>, Vec<Delta>),
}

/// Reads the job's next event into `parser`. A reply that is done (stop sequence) cancels the
/// rest of the generation; the final step comes with the engine's numbers.
pub async fn next_step(
    handle: &mut JobHandle,
    parser: &mut Option<ReplyParser>,
) -> Result<Step, ApiError> {
    loop {
        let Some(event) = handle.events.recv().await else {
            return Err(ApiError::Engine("the engine stopped".into()));
        };
        let Some(p) = parser.as_mut() else {
            return Err(ApiError::Engine("reply already finished".into()));
        };
        match event {
            EngineEvent::Started { .. } => {}
            EngineEvent::Token(id) => {
                let deltas = p.push(id)?;
                if p.is_done() {
                    handle.cancel.store(true, Ordering::SeqCst);
                }
                if !deltas.is_empty() {
                    return Ok(Step::Deltas(deltas));
                }
            }
            EngineEvent::Done(finished) => {
                let Some(p) = parser.take() else {
                    return Err(ApiError::Engine("reply already finished".into()));
                };
                let (deltas, reply) = p.finish()?;
                return Ok(Step::Done(Box::new((reply, finished)), deltas));
            }
            EngineEvent::Failed(message) => return Err(ApiError::Engine(message)),
        }
    }
}

/// Runs the job to its end.
pub async fn collect(
    mut handle: JobHandle,
    parser: ReplyParser,
) -> Result<(Reply, Finished), ApiError> {
    let mut parser = Some(parser);
    loop {
        if let Step::Done(done, _) = next_step(&mut handle, &mut parser).await? {
            return Ok(*done);
        }
    }
}

/// `usage`; `reasoning_tokens` when the reply was parsed as harmony (chat).
pub fn usage(f: &Finished, reasoning_tokens: Option<usize>) -> Value {
    let mut u = json!({
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": f.generated,
        "total_tokens": f.prompt_tokens + f.generated,
        "prompt_tokens_details": {"cached_tokens": f.reused_tokens},
    });
    if let Some(n) = reasoning_tokens {
        u["completion_tokens_details"] = json!({"reasoning_tokens": n});
    }
    u
}

/// Server-side timings beside `usage` (as llama.cpp's server reports them): not part of the
/// OpenAI schema, which clients ignore.
pub fn timings(f: &Finished) -> Value {
    json!({
        "time_to_first_token_ms": f.time_to_first_token.as_secs_f64() * 1e3,
        "prompt_tokens_reused": f.reused_tokens,
        "decode_tok_s": f.decode_tok_s,
    })
}

/// `usage` and `timings`, as the last chunk of a stream (`choices` empty) or inside a whole
/// response.
pub fn usage_fields(f: &Finished, reasoning_tokens: Option<usize>) -> (Value, Value) {
    (usage(f, reasoning_tokens), timings(f))
}

/// The chunk that ends a chat or text stream when the client asked for usage
/// (`stream_options.include_usage`): no choices, the numbers of the whole reply.
pub fn usage_chunk(head: &Value, f: &Finished, reasoning_tokens: Option<usize>) -> Value {
    let mut v = head.clone();
    v["choices"] = json!([]);
    v["usage"] = usage(f, reasoning_tokens);
    v["timings"] = timings(f);
    v
}

/// The client has gone. The stream ends there; dropping the job handle with it cancels the
/// generation.
pub struct Gone;

/// The sending half of an SSE response.
pub struct Events(tokio::sync::mpsc::Sender<Result<Event, Infallible>>);

impl Events {
    pub async fn send(&self, event: Event) -> Result<(), Gone> {
        self.0.send(Ok(event)).await.map_err(|_| Gone)
    }

    /// One `data:` event of JSON.
    pub async fn json(&self, v: &Value) -> Result<(), Gone> {
        self.send(Event::default().data(v.to_string())).await
    }

    /// The error body in place of the rest of a chat or text stream, which then ends with
    /// `[DONE]` as a completed one does.
    pub async fn error_then_done(&self, e: &ApiError) -> Result<(), Gone> {
        self.json(&e.body()).await?;
        self.done().await
    }

    /// `[DONE]`: the end of a chat or text completion stream.
    pub async fn done(&self) -> Result<(), Gone> {
        self.send(Event::default().data("[DONE]")).await
    }
}

/// An SSE response whose events `produce` sends from a task of its own.
pub fn sse<F, Fut>(produce: F) -> Response
where
    F: FnOnce(Events) -> Fut,
    Fut: Future<Output = Result<(), Gone>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(Events(tx)));
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}
