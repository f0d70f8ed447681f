//! `oss-wgpu render`: a chat request (or just its messages) as the server renders it, token
//! ids or text. For debugging templates and for exact tests (`generate --prompt-ids`).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde_json::Value;

use oss_wgpu::checkpoint::Checkpoint;
use oss_wgpu::conversation::api::{self, ChatMessage, ChatOptions, Tool};
use oss_wgpu::conversation::render;
use oss_wgpu::harmony::Reasoning;
use oss_wgpu::model::locate;
use oss_wgpu::tokenizer::Tokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RenderOutput {
    /// Comma-separated token ids (as `generate --prompt-ids` takes them).
    Ids,
    /// The prompt with control tokens spelled out.
    Text,
}

#[derive(Args)]
pub struct RenderArgs {
    /// JSON file: a chat request ({"messages": [...], "tools": [...], ...}) or a messages array.
    /// Read from stdin when absent or "-".
    pub file: Option<PathBuf>,
    /// Checkpoint folder whose tokenizer encodes the ids.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A tokenizer.json to use instead of the checkpoint's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "ids")]
    pub output: RenderOutput,
    /// The system message's current date, YYYY-MM-DD, or "none" (default: today, UTC), as
    /// `serve --date`.
    #[arg(long)]
    pub date: Option<String>,
    /// Reasoning effort when the request names none.
    #[arg(long, default_value = "medium")]
    pub reasoning: String,
}

#[derive(Deserialize)]
struct Request {
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    reasoning_effort: Option<String>,
}

pub fn run(a: RenderArgs) -> Result<ExitCode> {
    let mut text = String::new();
    match a.file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => {
            std::io::stdin().read_to_string(&mut text)?;
        }
    }
    let value: Value = serde_json::from_str(&text).context("the input is not JSON")?;
    let req: Request = if value.is_array() {
        Request {
            messages: serde_json::from_value(value)?,
            tools: None,
            tool_choice: None,
            reasoning_effort: None,
        }
    } else {
        serde_json::from_value(value).context("not a chat request")?
    };
    let reasoning: Reasoning = match req.reasoning_effort.as_deref() {
        Some("minimal") => Reasoning::Low,
        Some(e) => e.parse()?,
        None => a.reasoning.parse()?,
    };
    let tools = match req.tool_choice.as_ref().and_then(Value::as_str) {
        Some("none") => Vec::new(),
        _ => req.tools.unwrap_or_default(),
    };
    let opts = ChatOptions {
        reasoning,
        current_date: crate::cli::serve::current_date(a.date.as_deref()),
        identity: None,
        tools,
    };
    let pieces = api::render_chat(&req.messages, &opts)?;
    match a.output {
        RenderOutput::Text => println!("{}", render::to_text(&pieces)),
        RenderOutput::Ids => {
            let tokenizer = match &a.tokenizer {
                Some(t) => Tokenizer::from_file(t)?,
                None => {
                    let dir = locate::resolve(a.model.as_deref())?;
                    let path = Checkpoint::open(&dir)?.tokenizer_path().ok_or_else(|| {
                        oss_wgpu::Error::Checkpoint {
                            path: dir.clone(),
                            message: "no tokenizer.json here or in the parent folder".into(),
                        }
                    })?;
                    Tokenizer::from_file(path)?
                }
            };
            let ids = render::to_ids(&pieces, &tokenizer)?;
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            println!("{}", list.join(","));
        }
    }
    Ok(ExitCode::SUCCESS)
}
