//! The oss-wgpu command line: argument parsing and printing only; the work is in the library.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

mod cli;

use oss_wgpu::checkpoint::inspect::{self, InspectReport};
use oss_wgpu::config::LayerType;
use oss_wgpu::gpu::{self, BackendChoice, GpuOptions};

#[derive(Parser)]
#[command(name = "oss-wgpu", version, about = "gpt-oss on any GPU through wgpu")]
struct Cli {
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(subcommand)]
    command: Command,
}

/// Switches that apply to every subcommand.
#[derive(Args, Clone)]
struct GpuArgs {
    /// Graphics API: auto, vulkan, metal, dx12 or gl.
    #[arg(long, global = true, env = "OSS_WGPU_BACKEND", default_value = "auto")]
    backend: String,
    /// Adapter by index (as `info` lists them) or by a substring of its name.
    #[arg(long, global = true, env = "OSS_WGPU_ADAPTER")]
    adapter: Option<String>,
    /// Force the portable path: no f16, no subgroups, f32 throughout.
    #[arg(long, global = true, env = "OSS_WGPU_PORTABLE", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    portable: bool,
    /// Compile shaders with wgpu's runtime checks (bounds checks, loop bounding): slower; for
    /// debugging.
    #[arg(long, global = true, env = "OSS_WGPU_SHADER_CHECKS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    shader_checks: bool,
    /// Lower the largest storage binding (bytes; K/M/G suffixes allowed); larger tensors are split.
    #[arg(long, global = true, env = "OSS_WGPU_MAX_BINDING")]
    max_binding_bytes: Option<String>,
}

impl GpuArgs {
    fn max_binding(&self) -> Result<Option<u64>> {
        Ok(match &self.max_binding_bytes {
            None => None,
            Some(s) => Some(gpu::parse_bytes(s).ok_or_else(|| {
                oss_wgpu::Error::argument(
                    "--max-binding-bytes",
                    format!("'{s}' is not a byte count"),
                )
            })?),
        })
    }

    fn options(&self) -> Result<GpuOptions> {
        let backend: BackendChoice = self.backend.parse()?;
        let max_binding_bytes = self.max_binding()?;
        Ok(GpuOptions {
            backend,
            adapter: self.adapter.clone(),
            portable: self.portable,
            max_binding_bytes,
            shader_checks: self.shader_checks,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate text: harmony chat by default (the final answer streams to stdout), or raw
    /// completion with --raw.
    Generate(cli::generate::GenerateArgs),
    /// Prefill and decode throughput against the bandwidth roofline, per-kernel GPU time.
    Bench(cli::bench::BenchArgs),
    /// An OpenAI-compatible HTTP server: chat completions (streaming, tools, reasoning),
    /// completions, responses, models.
    Serve(cli::serve::ServeArgs),
    /// An interactive multi-turn chat in the terminal.
    Chat(cli::chat::ChatArgs),
    /// Render a chat request (messages JSON) as the server does: token ids or text.
    Render(cli::render::RenderArgs),
    /// Write a random checkpoint of a preset's shapes (for full-size tests without a download).
    #[command(hide = true)]
    WriteSynthetic(cli::synthetic::SyntheticArgs),
    /// List every adapter of every compiled backend and what it offers.
    Info {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a checkpoint folder without a GPU: layout, tensors, parameter counts, memory.
    /// Exits 0 only if the checkpoint would load.
    Inspect {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Context length for the KV cache estimate.
        #[arg(long, default_value_t = 8192)]
        ctx: usize,
        /// The checkpoint folder (a hub snapshot, its original/ folder, or a converted export).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let opts = cli.gpu.options()?;
    match cli.command {
        Command::Info { json } => info(&opts, json),
        Command::Generate(args) => cli::generate::run(&opts, args),
        Command::Bench(args) => cli::bench::run(&opts, args),
        Command::Serve(args) => cli::serve::run(&opts, args),
        Command::Chat(args) => cli::chat::run(&opts, args),
        Command::Render(args) => cli::render::run(args),
        Command::WriteSynthetic(args) => cli::synthetic::run(args),
        Command::Inspect { json, ctx, dir } => {
            let max_binding = cli
                .gpu
                .max_binding()?
                .unwrap_or(inspect::DEFAULT_MAX_BINDING);
            run_inspect(&dir, ctx, max_binding, json)
        }
    }
}

fn run_inspect(
    dir: &std::path::Path,
    ctx: usize,
    max_binding: u64,
    json: bool,
) -> Result<ExitCode> {
    let report = match inspect::inspect(dir, ctx, max_binding) {
        Ok(r) => r,
        Err(e) => {
            if json {
                let v = serde_json::json!({ "valid": false, "error": e.to_string() });
                out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_report(&report)
    };
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The human-readable report. Built as one string so that a closed pipe (`| head`) ends the
/// output quietly instead of failing half-way through.
fn render_report(r: &InspectReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let c = &r.config;
    let _ = writeln!(o, "checkpoint   {}", r.dir.display());
    if r.root != r.dir {
        let _ = writeln!(o, "weights from {}", r.root.display());
    }
    let _ = writeln!(o, "layout       {}", r.layout_description);
    let keys: Vec<String> = r
        .key_prefixes
        .iter()
        .map(|k| {
            let unused = if k.used { "" } else { ", ignored" };
            format!("{}* ({}{unused})", k.prefix, k.tensors)
        })
        .collect();
    let _ = writeln!(o, "keys         {}", keys.join(", "));
    let _ = writeln!(o, "qkv          {}", r.qkv);
    let _ = writeln!(o, "experts      {}", r.experts);
    for (i, f) in r.files.iter().enumerate() {
        let head = if i == 0 { "files" } else { "" };
        let _ = writeln!(
            o,
            "{head:<12} {} ({}, {} tensors)",
            f.path.display(),
            bytes(f.bytes),
            f.tensors
        );
    }
    let dtypes: Vec<String> = r
        .dtypes
        .iter()
        .map(|d| format!("{} {} tensors {}", d.dtype, d.tensors, bytes(d.bytes)))
        .collect();
    let _ = writeln!(o, "dtypes       {}", dtypes.join("; "));
    let sliding = c
        .layer_types
        .iter()
        .filter(|&&t| t == LayerType::Sliding)
        .count();
    let _ = writeln!(
        o,
        "config       {} layers ({sliding} sliding, window {}), hidden {}, intermediate {}, \
         heads {} q / {} kv x {}, experts {} (top {}), vocab {}",
        c.num_hidden_layers,
        c.sliding_window,
        c.hidden_size,
        c.intermediate_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
        c.num_experts,
        c.experts_per_token,
        c.vocab_size
    );
    let rs = &c.rope_scaling;
    let _ =
        writeln!(o,
        "             rope theta {} yarn x{} (beta_fast {}, beta_slow {}, original {}, truncate \
         {}), max positions {}, rms eps {:e}, swiglu limit {}",
        c.rope_theta,
        rs.factor,
        rs.beta_fast,
        rs.beta_slow,
        rs.original_max_position_embeddings,
        rs.truncate,
        c.max_position_embeddings,
        c.rms_norm_eps,
        c.swiglu_limit
    );
    let _ = writeln!(o, "stop tokens  {:?}", c.eos_token_ids);
    let _ = writeln!(
        o,
        "tokenizer    {}",
        r.tokenizer
            .as_ref()
            .map_or_else(|| "none found".to_string(), |p| p.display().to_string())
    );
    let _ = writeln!(o, "tensors");
    let width = r.tensors.iter().map(|g| g.name.len()).max().unwrap_or(0);
    for g in &r.tensors {
        let count = if g.count > 1 {
            format!(" x{}", g.count)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {:<width$} {:<16} <- {} {} {:?}{count}",
            g.name,
            format!("{:?}", g.shape),
            g.stored,
            g.stored_dtype,
            g.stored_shape,
        );
    }
    let _ = writeln!(
        o,
        "parameters   {} total, {} active per token (embedding {}, experts {})",
        thousands(r.params.total),
        thousands(r.params.active),
        thousands(r.params.embedding),
        thousands(r.params.experts)
    );
    let d = &r.decode_bytes;
    let _ =
        writeln!(o,
        "decode reads {} per token: attention {}, router {}, norms {}, experts {}, lm_head {}, \
         embedding row {}",
        bytes(d.total),
        bytes(d.attention),
        bytes(d.router),
        bytes(d.norms),
        bytes(d.experts),
        bytes(d.lm_head),
        bytes(d.embedding_row)
    );
    let g = &r.gpu;
    let split = if g.split_tensors.is_empty() {
        "none split".to_string()
    } else {
        format!("{} tensors split", g.split_tensors.len())
    };
    let _ =
        writeln!(o,
        "GPU memory   weights {} (binding limit {}, {split}), KV cache {} at ctx {} ({} positions \
         on full layers, {} on sliding), total {}",
        bytes(g.weights),
        bytes(g.max_binding),
        bytes(g.kv_cache),
        g.ctx,
        g.kv_positions_full,
        g.kv_positions_sliding,
        bytes(g.total)
    );
    for n in &r.notes {
        let _ = writeln!(o, "note         {n}");
    }
    let _ = writeln!(
        o,
        "valid        yes: every tensor present, with the dtype and shape the config implies"
    );
    o
}

/// Writes to stdout; a reader that went away is not an error.
fn out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Decimal units, as disk and memory sizes are usually quoted for models.
fn bytes(b: u64) -> String {
    let f = b as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{b} B")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn info(opts: &GpuOptions, json: bool) -> Result<ExitCode> {
    let reports = gpu::adapter_reports(opts.backend);
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        println!(
            "no adapters for backend '{}': install a GPU driver, or for a CPU Vulkan adapter \
             apt-get install mesa-vulkan-drivers",
            opts.backend
        );
        return Ok(ExitCode::FAILURE);
    }
    for r in &reports {
        let mark = if r.auto_selected { "  <- auto" } else { "" };
        println!("[{}] {} ({}){mark}", r.index, r.name, r.backend);
        println!(
            "    vendor {}, {}, driver {} {}",
            r.vendor, r.device_type, r.driver, r.driver_info
        );
        println!(
            "    shader-f16 {}, subgroup {} (size {}..{}), timestamp-query {}, cooperative-matrix {}",
            yes(r.shader_f16),
            yes(r.subgroup),
            r.subgroup_min_size,
            r.subgroup_max_size,
            yes(r.timestamp_query),
            yes(r.cooperative_matrix)
        );
        println!(
            "    max buffer {} B, max storage binding {} B, workgroup storage {} B",
            r.max_buffer_size,
            r.max_storage_buffer_binding_size,
            r.max_compute_workgroup_storage_size
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
