//! `oss-wgpu generate`: harmony chat (or raw completion) streamed to the terminal.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use oss_wgpu::checkpoint::{Checkpoint, WeightSource};
use oss_wgpu::conversation::render;
use oss_wgpu::gpu::{Gpu, GpuOptions};
use oss_wgpu::harmony::{self, Channel, ChatRequest, Event, HarmonyParser, Reasoning};
use oss_wgpu::model::forward::DEFAULT_CHUNK;
use oss_wgpu::model::{
    kv_cache, locate, GenerateOptions, Generator, Model, SamplingParams, Weights,
};
use oss_wgpu::tokenizer::Tokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The answer as text.
    Text,
    /// The text, then the generated ids, comma-separated, as the last line of stdout.
    Ids,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Checkpoint folder (else $OSS_WGPU_MODEL, else the Hugging Face cache's openai/gpt-oss-20b).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The user message (or, with --raw, the text to continue). Read from stdin when absent.
    #[arg(long)]
    prompt: Option<String>,
    /// Raw token ids instead of text, e.g. 1,2,3 (no template).
    #[arg(long, conflicts_with = "prompt")]
    prompt_ids: Option<String>,
    /// Replaces the system message's identity line ("You are ChatGPT, ...").
    #[arg(long)]
    system: Option<String>,
    /// Developer instructions (a developer message before the user's).
    #[arg(long)]
    developer: Option<String>,
    /// Reasoning effort: low, medium or high.
    #[arg(long, default_value = "medium")]
    reasoning: String,
    /// The current date for the system message (YYYY-MM-DD; default: today, UTC).
    #[arg(long)]
    date: Option<String>,
    /// Plain completion of the prompt text, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Show the analysis channel (the model's reasoning) on stderr, dimmed.
    #[arg(long)]
    show_reasoning: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// 0 means greedy.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    /// Seed of the sampler (default: from the clock).
    #[arg(long)]
    seed: Option<u32>,
    /// Context length (default 8192, at most the model's maximum).
    #[arg(long)]
    ctx: Option<usize>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Write the logits at every prompt position, f32 [prompt_len, vocab], as a NumPy .npy.
    #[arg(long)]
    dump_logits: Option<PathBuf>,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = (secs / 86400) as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn parse_ids(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>().map_err(|_| {
                oss_wgpu::Error::argument("--prompt-ids", format!("'{t}' is not a token id")).into()
            })
        })
        .collect()
}

/// Writes and flushes at once, so that text already shown survives an interrupt.
fn emit(out: &mut impl Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Where generated text goes: the answer to stdout, reasoning (when shown) to stderr.
struct Sink {
    out: std::io::StdoutLock<'static>,
    err: std::io::Stderr,
    dim: bool,
    show_reasoning: bool,
    ended_with_newline: bool,
}

impl Sink {
    fn answer(&mut self, text: &str) -> Result<()> {
        if !text.is_empty() {
            self.ended_with_newline = text.ends_with('\n');
        }
        emit(&mut self.out, text)
    }

    fn event(&mut self, ev: Event) -> Result<()> {
        if let Event::Text { channel, text } = ev {
            if channel == Channel::Final {
                self.answer(&text)?;
            } else if self.show_reasoning {
                let t = if self.dim {
                    format!("{DIM}{text}{RESET}")
                } else {
                    text
                };
                emit(&mut self.err, &t)?;
            }
        }
        Ok(())
    }
}

pub fn run(gpu_opts: &GpuOptions, a: GenerateArgs) -> Result<ExitCode> {
    let dir = locate::resolve(a.model.as_deref())?;
    let ckpt = Checkpoint::open(&dir)?;
    let config = ckpt.config().clone();
    let ctx = match a.ctx {
        Some(c) if c > config.max_position_embeddings => {
            return Err(oss_wgpu::Error::argument(
                "--ctx",
                format!(
                    "{c} is above the model's maximum of {}",
                    config.max_position_embeddings
                ),
            )
            .into())
        }
        Some(c) => c,
        None => 8192.min(config.max_position_embeddings),
    };

    // The prompt, as ids, before anything touches the GPU.
    let tokenizer = match ckpt.tokenizer_path() {
        Some(p) => Some(Tokenizer::from_file(p)?),
        None => None,
    };
    let need_tokenizer = || {
        tokenizer
            .as_ref()
            .ok_or_else(|| oss_wgpu::Error::Checkpoint {
                path: dir.clone(),
                message: "no tokenizer.json here or in the parent folder".into(),
            })
    };
    let prompt_ids = if let Some(s) = &a.prompt_ids {
        parse_ids(s)?
    } else {
        let text = match &a.prompt {
            Some(p) => p.clone(),
            None => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the prompt from stdin")?;
                s
            }
        };
        if a.raw {
            // Raw completion continues the text as written, control tokens included.
            need_tokenizer()?.encode(&text)?
        } else {
            let req = ChatRequest {
                system_identity: a.system.clone(),
                current_date: Some(a.date.clone().unwrap_or_else(today_utc)),
                reasoning: a.reasoning.parse::<Reasoning>()?,
                developer_instructions: a.developer.clone(),
                user: text,
            };
            // Rendered piecewise: the user's text is never matched as control tokens.
            let pieces = render::render_for_completion(&render::single_turn(&req))?;
            render::to_ids(&pieces, need_tokenizer()?)?
        }
    };
    if let Some(&bad) = prompt_ids
        .iter()
        .find(|&&id| id as usize >= config.vocab_size)
    {
        return Err(oss_wgpu::Error::argument(
            "--prompt-ids",
            format!(
                "token id {bad} is outside the vocabulary (size {})",
                config.vocab_size
            ),
        )
        .into());
    }
    if prompt_ids.is_empty() {
        return Err(oss_wgpu::Error::argument("--prompt", "the prompt has no tokens").into());
    }
    if prompt_ids.len() + a.max_tokens > ctx {
        return Err(oss_wgpu::Error::argument(
            "--max-tokens",
            format!(
                "the prompt ({} tokens) plus --max-tokens {} exceeds the context of {ctx} (raise --ctx, at most {}, or lower --max-tokens)",
                prompt_ids.len(),
                a.max_tokens,
                config.max_position_embeddings
            ),
        )
        .into());
    }
    let chat = !a.raw && a.prompt_ids.is_none();
    let stop_ids = match (&tokenizer, chat) {
        (Some(t), true) => harmony::stop_ids(t, &config.eos_token_ids),
        _ => config.eos_token_ids.clone(),
    };

    let gpu = Gpu::new(gpu_opts)?;
    let weights_bytes = Weights::gpu_bytes(&config, gpu.max_binding().min(gpu.max_buffer()))?;
    let kv_bytes = kv_cache::bytes(
        &config,
        ctx,
        DEFAULT_CHUNK,
        oss_wgpu::kernels::kv_element_bytes(&gpu),
    );
    eprintln!(
        "{} on {}: weights {}, KV cache {} at --ctx {ctx}",
        dir.display(),
        gpu.adapter_name(),
        crate::bytes(weights_bytes),
        crate::bytes(kv_bytes)
    );
    let model = Model::upload(&gpu, &ckpt, &dir, std::io::stderr().is_terminal())?;
    drop(ckpt);
    let mut generator = Generator::new(&gpu, &model, ctx, a.max_tokens.max(1))?;

    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0)
    });
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature.max(0.0),
            top_k: a.top_k,
            top_p: a.top_p.clamp(0.0, 1.0),
            seed,
        },
        stop_ids,
        prompt_logits: a.dump_logits.is_some(),
    };

    let mut sink = Sink {
        out: std::io::stdout().lock(),
        err: std::io::stderr(),
        dim: std::io::stderr().is_terminal(),
        show_reasoning: a.show_reasoning,
        ended_with_newline: true,
    };
    let mut ids = Vec::new();
    let mut parser = match (&tokenizer, chat) {
        (Some(t), true) => Some(HarmonyParser::new(t)?),
        _ => None,
    };
    let mut stream = tokenizer.as_ref().map(|t| t.decode_stream());
    // An output error (a closed pipe, say) stops generation and is reported after it.
    let mut failure = None;
    let stats = generator.generate(&prompt_ids, &opts, |id| {
        ids.push(id);
        let mut step = || -> Result<()> {
            if let Some(p) = parser.as_mut() {
                for ev in p.push(id)? {
                    sink.event(ev)?;
                }
            } else if let Some(s) = stream.as_mut() {
                // A stop token ends the completion; it is not part of the text.
                if !opts.stop_ids.contains(&id) {
                    if let Some(text) = s.step(id)? {
                        sink.answer(&text)?;
                    }
                }
            }
            Ok(())
        };
        match step() {
            Ok(()) => Ok(true),
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(p) = parser.as_mut() {
        for ev in p.finish()? {
            sink.event(ev)?;
        }
    } else if let Some(s) = stream.as_mut() {
        if let Some(text) = s.flush()? {
            sink.answer(&text)?;
        }
    }
    if !sink.ended_with_newline {
        sink.answer("\n")?;
    }
    let mut out = sink.out;
    if a.output == Output::Ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        emit(&mut out, &format!("{}\n", list.join(",")))?;
    }
    if let (Some(path), Some(logits)) = (&a.dump_logits, &stats.prompt_logits) {
        oss_wgpu::npy::write_f32(path, &[prompt_ids.len(), config.vocab_size], logits)?;
    }
    eprintln!(
        "prompt {} tokens, prefill {:.1} tok/s; generated {} tokens, decode {:.1} tok/s",
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.generated,
        stats.decode_tok_s()
    );
    Ok(ExitCode::SUCCESS)
}
