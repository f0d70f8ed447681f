//! `oss-wgpu chat`: a multi-turn conversation in the terminal, on the server's conversation
//! code and engine. Line editing and history (rustyline); `/reset`, `/reasoning
//! low|medium|high`, `/show-reasoning`; the reply streams; Ctrl-C stops the reply, not the
//! program (at the prompt it clears the line; Ctrl-D or /quit leaves).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use rustyline::error::ReadlineError;

use crate::cli::serve;

use oss_wgpu::conversation::api::{self, ChatMessage, ChatOptions};
use oss_wgpu::conversation::{Delta, ReplyOptions, ReplyParser};
use oss_wgpu::gpu::GpuOptions;
use oss_wgpu::harmony::{self, Reasoning};
use oss_wgpu::model::{locate, SamplingParams};
use oss_wgpu::server::engine::{EngineEvent, Job};

#[derive(Args)]
pub struct ChatArgs {
    /// Checkpoint folder (else $OSS_WGPU_MODEL, else the Hugging Face cache's openai/gpt-oss-20b).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Instructions for the whole conversation (a developer message).
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value = "medium")]
    pub reasoning: String,
    /// Show the reasoning (dimmed) as it streams.
    #[arg(long)]
    pub show_reasoning: bool,
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long)]
    pub seed: Option<u32>,
    #[arg(long)]
    pub ctx: Option<usize>,
    /// The system message's current date, YYYY-MM-DD, or "none" (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// Testing only: reply with this harmony text instead of running the model.
    #[arg(long, hide = true)]
    pub scripted_reply: Vec<String>,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Ctrl-C while a reply streams: a handler on its own thread sets this flag instead of the
/// default (ending the process). At the prompt, rustyline reads Ctrl-C as a key. The handler
/// is installed before the first readline: rustyline saves and restores the SIGINT handler
/// around each line, so one installed later would be undone.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = rt.block_on(async { signal(SignalKind::interrupt()) })?;
        std::thread::spawn(move || {
            rt.block_on(async move {
                while sigint.recv().await.is_some() {
                    set.store(true, Ordering::SeqCst);
                }
            })
        });
    }
    #[cfg(not(unix))]
    std::thread::spawn(move || {
        rt.block_on(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                set.store(true, Ordering::SeqCst);
            }
        })
    });
    Ok(flag)
}

pub fn run(gpu: &GpuOptions, a: ChatArgs) -> Result<ExitCode> {
    let dir = locate::resolve(a.model.as_deref())?;
    let engine = serve::start_engine(gpu, dir, a.ctx, a.max_tokens, 1, &a.scripted_reply)?;
    let interrupted = interrupt_flag()?;
    let mut reasoning: Reasoning = a.reasoning.parse()?;
    let mut show_reasoning = a.show_reasoning;
    let date = serve::current_date(a.date.as_deref());
    let stop_ids = harmony::stop_ids(&engine.tokenizer, &engine.config.eos_token_ids);
    let mut history: Vec<ChatMessage> = Vec::new();
    let mut seed = a.seed.unwrap_or(0);

    let mut editor = rustyline::DefaultEditor::new()?;
    eprintln!(
        "{} (context {}). /reset, /reasoning low|medium|high, /show-reasoning, /quit.",
        engine.model_name, engine.ctx
    );
    loop {
        let line = match editor.readline(">>> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim().to_owned();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(&line);
        if let Some(cmd) = line.strip_prefix('/') {
            let mut words = cmd.split_whitespace();
            match (words.next(), words.next()) {
                (Some("quit" | "exit"), _) => break,
                (Some("reset"), _) => {
                    history.clear();
                    println!("(conversation cleared)");
                }
                (Some("reasoning"), Some(level)) => match level.parse() {
                    Ok(r) => {
                        reasoning = r;
                        println!("(reasoning {reasoning})");
                    }
                    Err(e) => println!("({e})"),
                },
                (Some("show-reasoning"), _) => {
                    show_reasoning = !show_reasoning;
                    println!(
                        "(reasoning {})",
                        if show_reasoning { "shown" } else { "hidden" }
                    );
                }
                _ => println!(
                    "(unknown command: /reset, /reasoning low|medium|high, /show-reasoning, /quit)"
                ),
            }
            continue;
        }

        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(ChatMessage::text("system", s.clone()));
        }
        messages.extend(history.iter().cloned());
        messages.push(ChatMessage::text("user", line.clone()));
        let opts = ChatOptions {
            reasoning,
            current_date: date.clone(),
            identity: None,
            tools: Vec::new(),
        };
        let prompt = match api::chat_ids(&messages, &opts, &engine.tokenizer) {
            Ok(p) => p,
            Err(e) => {
                println!("(error: {e})");
                continue;
            }
        };
        if prompt.len() + 1 > engine.ctx {
            println!("(the conversation is longer than the context: /reset)");
            continue;
        }
        let max_tokens = a.max_tokens.min(engine.ctx - prompt.len());
        let sampling = SamplingParams {
            temperature: a.temperature.max(0.0),
            top_k: 0,
            top_p: a.top_p.clamp(0.0, 1.0),
            seed,
        };
        seed = seed.wrapping_add(1);
        let (job, mut handle) = Job::new(prompt, max_tokens, sampling, stop_ids.clone());
        engine.submit(job)?;
        let mut parser = ReplyParser::new(&engine.tokenizer, ReplyOptions::default())?;
        interrupted.store(false, Ordering::SeqCst);
        let mut out = std::io::stdout();
        let mut in_reasoning = false;
        let mut stopped = false;
        let mut show = |d: &Delta, out: &mut std::io::Stdout| -> std::io::Result<()> {
            match d {
                Delta::Reasoning(t) if show_reasoning => {
                    // Dimmed as one span, so the terminal shows the text uninterrupted.
                    if !in_reasoning {
                        in_reasoning = true;
                        write!(out, "{DIM}")?;
                    }
                    write!(out, "{t}")?;
                }
                Delta::Content(t) => {
                    if in_reasoning {
                        in_reasoning = false;
                        writeln!(out, "{RESET}")?;
                    }
                    write!(out, "{t}")?;
                }
                _ => {}
            }
            out.flush()
        };
        loop {
            if interrupted.load(Ordering::SeqCst) && !stopped {
                stopped = true;
                handle.cancel.store(true, Ordering::SeqCst);
            }
            let event = handle.events.blocking_recv();
            match event {
                Some(EngineEvent::Token(id)) => {
                    for d in parser.push(id)? {
                        show(&d, &mut out)?;
                    }
                    if parser.is_done() {
                        handle.cancel.store(true, Ordering::SeqCst);
                    }
                }
                Some(EngineEvent::Started { .. }) => {}
                Some(EngineEvent::Done(_)) | None => break,
                Some(EngineEvent::Failed(m)) => {
                    println!("\n(error: {m})");
                    break;
                }
            }
        }
        let (rest, reply) = parser.finish()?;
        for d in &rest {
            show(d, &mut out)?;
        }
        if in_reasoning {
            print!("{RESET}");
        }
        if stopped {
            print!(" [stopped]");
        }
        println!();
        history.push(ChatMessage::text("user", line));
        history.push(ChatMessage {
            reasoning_content: Some(reply.reasoning),
            ..ChatMessage::text("assistant", reply.content)
        });
    }
    Ok(ExitCode::SUCCESS)
}
