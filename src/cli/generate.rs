//! `oss-wgpu generate`: harmony chat (or raw completion) streamed to the terminal.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use oss_wgpu::checkpoint::{Checkpoint, WeightSource};
use oss_wgpu::conversation::render;
use oss_wgpu::gpu::{Gpu, GpuOptions};
use oss_wgpu::harmony::{self, Channel, ChatRequest, Event, HarmonyParser, Reasoning};
use oss_wgpu::model::memory::MemoryPlan;
use oss_wgpu::model::{fit, locate, GenerateOptions, Generator, Model, SamplingParams};
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
    /// Checkpoint folder or a Hugging Face repo id in the cache (e.g. openai/gpt-oss-120b);
    /// else $OSS_WGPU_MODEL, else the cache's openai/gpt-oss-20b.
    #[arg(short = 'm', long)]
    model: Option<PathBuf>,
    /// The user message (or, with --raw, the text to continue), as the last argument.
    #[arg(value_name = "PROMPT", conflicts_with_all = ["prompt", "prompt_ids"])]
    prompt_arg: Option<String>,
    /// The user message (or, with --raw, the text to continue). Read from stdin when neither
    /// this nor PROMPT is given and stdin is a pipe or a file.
    #[arg(short = 'p', long)]
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
    /// Most tokens to generate (default: as many as the context leaves after the prompt).
    #[arg(short = 'n', long)]
    max_tokens: Option<usize>,
    /// Sampling temperature, 0 or more; 0 means greedy (deterministic).
    #[arg(short = 't', long, visible_alias = "temp", default_value_t = 1.0, value_parser = parse_temperature)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1]
    /// (1 = off).
    #[arg(long, default_value_t = 1.0, value_parser = parse_top_p)]
    top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    /// Seed of the sampler (default: from the clock).
    #[arg(long)]
    seed: Option<u32>,
    /// Context length (default 8192, at most the model's maximum).
    #[arg(short = 'c', long)]
    ctx: Option<usize>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Write the logits at every prompt position, f32 [prompt_len, vocab], as a NumPy .npy.
    #[arg(long)]
    dump_logits: Option<PathBuf>,
}

/// A temperature: finite and not negative (clap reports the error with the flag's name).
fn parse_temperature(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "expected a finite number >= 0 (0 = greedy), got {s}"
        ));
    }
    Ok(v)
}

/// A top-p mass in (0, 1].
fn parse_top_p(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(v > 0.0 && v <= 1.0) {
        return Err(format!("expected a number in (0, 1] (1 = off), got {s}"));
    }
    Ok(v)
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

/// The prompt text: the positional argument, --prompt, or stdin when it is not a terminal.
fn prompt_text(a: &GenerateArgs) -> Result<String> {
    if let Some(p) = a.prompt_arg.as_ref().or(a.prompt.as_ref()) {
        return Ok(p.clone());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // A silent wait for input that nobody knows is expected looks like a hang.
        return Err(oss_wgpu::Error::argument(
            "PROMPT",
            "no prompt given: pass it as the last argument (oss-wgpu generate \"Hello\"), with \
             -p/--prompt, or pipe it on stdin (echo Hello | oss-wgpu generate)",
        )
        .into());
    }
    let mut s = String::new();
    stdin
        .lock()
        .read_to_string(&mut s)
        .context("reading the prompt from stdin")?;
    Ok(s)
}

/// A closed stdout (`| head -c 5`) ends generation quietly: the reader has what it wanted.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(gpu_opts: &GpuOptions, a: GenerateArgs) -> Result<ExitCode> {
    // Start-up is timed from here: opening the checkpoint, the device, the upload and the
    // pipelines, everything before the first prefill but reading the prompt.
    let start = Instant::now();
    let dir = locate::resolve(a.model.as_deref())?;
    let ckpt = Checkpoint::open(&dir)?;
    // Reading the prompt (stdin may wait on a pipe) is not start-up.
    let opened = start.elapsed();
    let config = ckpt.config().clone();
    let ctx = a.ctx.unwrap_or(8192.min(config.max_position_embeddings));
    fit::check_ctx(&config, ctx)?;
    // An unwritable --dump-logits is found now, not after the whole generation. The file is
    // opened without truncating; write_f32 replaces it at the end.
    if let Some(path) = &a.dump_logits {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| oss_wgpu::Error::io(path, e))
            .context("--dump-logits")?;
    }

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
                message: "no tokenizer.json here or in the parent folder (--prompt-ids works \
                          without one)"
                    .into(),
            })
    };
    let prompt_ids = if let Some(s) = &a.prompt_ids {
        parse_ids(s)?
    } else {
        let text = prompt_text(&a)?;
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
    // A tokenizer that yields ids outside the vocabulary does not belong to this checkpoint:
    // blame it, not the prompt.
    if let (None, Some(t), Some(bad)) = (
        &a.prompt_ids,
        &tokenizer,
        fit::out_of_vocabulary(&config, &prompt_ids),
    ) {
        return Err(oss_wgpu::Error::Tokenizer {
            path: t.path().to_path_buf(),
            message: format!(
                "encodes the prompt with token id {bad}, outside the model's vocabulary of {} \
                 (config.json vocab_size): the tokenizer does not belong to this checkpoint",
                config.vocab_size
            ),
        }
        .into());
    }
    fit::check_prompt(&config, &prompt_ids)?;
    let max_tokens = fit::answer_tokens(&config, ctx, prompt_ids.len(), a.max_tokens)?;
    let chat = !a.raw && a.prompt_ids.is_none();
    let stop_ids = match (&tokenizer, chat) {
        (Some(t), true) => harmony::stop_ids(t, &config.eos_token_ids),
        _ => config.eos_token_ids.clone(),
    };

    let device_start = Instant::now();
    let gpu = Gpu::new(gpu_opts)?;
    let memory = MemoryPlan::on(&gpu, &config, ctx)?;
    eprintln!(
        "{} on {}: weights {}, KV cache {} at --ctx {ctx}, activations {}",
        dir.display(),
        gpu.adapter_name(),
        crate::bytes(memory.weights),
        crate::bytes(memory.kv_cache),
        crate::bytes(memory.activations)
    );
    let model = Model::upload(&gpu, &ckpt, &dir, std::io::stderr().is_terminal())?;
    drop(ckpt);
    let loaded = opened + device_start.elapsed();
    let pipelines_start = Instant::now();
    let mut generator = Generator::new(&gpu, &model, ctx, max_tokens.max(1))?;
    gpu.save_pipeline_cache();
    let compiled = pipelines_start.elapsed();

    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0)
    });
    let opts = GenerateOptions {
        max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
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
    let finish = |sink: &mut Sink, parser: &mut Option<HarmonyParser>| -> Result<()> {
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
        if a.output == Output::Ids {
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            emit(&mut sink.out, &format!("{}\n", list.join(",")))?;
        }
        Ok(())
    };
    match finish(&mut sink, &mut parser) {
        Err(e) if is_broken_pipe(&e) => {}
        r => r?,
    }
    if let (Some(path), Some(logits)) = (&a.dump_logits, &stats.prompt_logits) {
        oss_wgpu::npy::write_f32(path, &[prompt_ids.len(), config.vocab_size], logits)?;
    }
    eprintln!(
        "start-up {:.2} s (checkpoint, device and weights {:.2} s, KV cache and pipelines {:.2} \
         s); prompt {} tokens, prefill {:.1} tok/s; generated {} tokens, decode {:.1} tok/s",
        (loaded + compiled).as_secs_f64(),
        loaded.as_secs_f64(),
        compiled.as_secs_f64(),
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.generated,
        stats.decode_tok_s()
    );
    Ok(ExitCode::SUCCESS)
}
