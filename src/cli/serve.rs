//! `oss-wgpu serve`: the OpenAI-compatible server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use oss_wgpu::gpu::GpuOptions;
use oss_wgpu::model::locate;
use oss_wgpu::server::engine::{Engine, EngineOptions};
use oss_wgpu::server::{self, ServerOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// Checkpoint folder (else $OSS_WGPU_MODEL, else the Hugging Face cache's openai/gpt-oss-20b).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Address to listen on; 127.0.0.1 keeps the server off the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the address is printed on stdout).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1 requests.
    #[arg(long, env = "OSS_WGPU_API_KEY")]
    pub api_key: Option<String>,
    /// Context length (default 8192, at most the model's maximum).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// The most tokens one request may generate.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Requests that may wait behind the running one; more get 503 queue_full.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Largest request body (K/M/G suffixes allowed).
    #[arg(long, default_value = "8MiB")]
    pub max_body: String,
    /// The system message's current date, YYYY-MM-DD, or "none" (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// Reasoning effort when a request names none: low, medium or high.
    #[arg(long, default_value = "medium")]
    pub reasoning: String,
    /// Testing only: reply with this harmony text instead of running the model (repeat the
    /// flag for several replies, used in turn).
    #[arg(long, hide = true)]
    pub scripted_reply: Vec<String>,
}

/// `--date`: today unless given; "none" leaves the line out.
pub fn current_date(arg: Option<&str>) -> Option<String> {
    match arg {
        Some("none") => None,
        Some(d) => Some(d.to_owned()),
        None => Some(crate::cli::generate::today_utc()),
    }
}

/// The engine `serve` and `chat` run on, loaded from `dir`.
pub fn start_engine(
    gpu: &GpuOptions,
    dir: PathBuf,
    ctx: Option<usize>,
    max_tokens: usize,
    queue: usize,
    scripted: &[String],
) -> Result<Engine> {
    eprintln!("loading {}", dir.display());
    Ok(Engine::start(EngineOptions {
        model_dir: dir,
        gpu: gpu.clone(),
        ctx,
        max_tokens,
        queue,
        scripted: scripted.to_vec(),
    })?)
}

pub fn run(gpu: &GpuOptions, a: ServeArgs) -> Result<ExitCode> {
    let dir = locate::resolve(a.model.as_deref())?;
    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .with_context(|| format!("--host {} --port {} is not an address", a.host, a.port))?;
    let max_body = oss_wgpu::gpu::parse_bytes(&a.max_body)
        .ok_or_else(|| oss_wgpu::Error::argument("--max-body", "not a byte count"))?;
    let opts = ServerOptions {
        addr,
        api_key: a.api_key.clone(),
        max_body: max_body as usize,
        current_date: current_date(a.date.as_deref()),
        reasoning: a.reasoning.parse()?,
    };
    let engine = start_engine(gpu, dir, a.ctx, a.max_tokens, a.queue, &a.scripted_reply)?;
    eprintln!("model {} ready, context {}", engine.model_name, engine.ctx);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(server::serve(engine, opts))?;
    Ok(ExitCode::SUCCESS)
}
