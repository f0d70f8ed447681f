//! The oss-wgpu command line: argument parsing and printing only; the work is in the library.

use std::io::IsTerminal;
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
    /// Force the portable path: no subgroups (plain WGSL that every adapter runs).
    #[arg(long, global = true, env = "OSS_WGPU_PORTABLE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    portable: bool,
    /// KV cache element type: f32 (computes what the reference computes) or f16 (half the
    /// memory; its rounding can change which experts a token picks, so outputs drift).
    #[arg(long, global = true, env = "OSS_WGPU_KV", default_value = "f32")]
    kv: String,
    /// Compile shaders with wgpu's runtime checks (bounds checks, loop bounding): slower; for
    /// debugging.
    #[arg(long, global = true, env = "OSS_WGPU_SHADER_CHECKS", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
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
            kv: self.kv.parse()?,
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
    /// Download a model into the Hugging Face cache (only what the engine needs, resumed,
    /// checked by SHA-256), or with --offline check the copy already there. Prints its folder.
    Pull(cli::pull::PullArgs),
    /// Write a checkpoint of a preset's exact shapes (20b, 120b or tiny) with pattern weights:
    /// a full-size folder for load-time measurements without a download.
    WriteSynthetic {
        /// 20b, 120b or tiny.
        preset: String,
        /// The folder to write (created).
        dir: PathBuf,
        /// Approximate size of each safetensors shard (K/M/G suffixes allowed).
        #[arg(long, default_value = "4GiB")]
        shard_size: String,
    },
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
        /// Context length for the KV cache estimate (default 8192, at most the model's maximum).
        #[arg(short = 'c', long)]
        ctx: Option<usize>,
        /// Also read every tensor and check its values: no NaN or infinity, no implausible
        /// MXFP4 scale (reads the whole checkpoint, on every core).
        #[arg(long)]
        check_values: bool,
        /// The checkpoint folder (a hub snapshot, its original/ folder, or a converted export),
        /// or a Hugging Face repo id in the cache.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    runtime_dir_fallback();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            // 2 for a bad argument, as clap exits for the ones it rejects itself.
            let argument = e
                .chain()
                .any(|c| matches!(c.downcast_ref(), Some(oss_wgpu::Error::Argument { .. })));
            ExitCode::from(if argument { 2 } else { 1 })
        }
    }
}

/// The error and its causes, each printed once: our messages already include their OS
/// error's text, which anyhow's chain would otherwise repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" on every run
/// without a usable runtime folder (containers, ssh sessions, CI). It looks like our error and
/// means nothing for compute, so point the variable at a private folder of our own
/// ($TMPDIR/oss-wgpu-runtime-UID, mode 0700) when it is unset or unusable. An existing valid
/// setting is left alone.
fn runtime_dir_fallback() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let usable = |p: &std::path::Path| {
            std::fs::metadata(p)
                .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
        };
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|p| usable(p.as_ref())) {
            return;
        }
        let dir = std::env::temp_dir().join(format!("oss-wgpu-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if usable(&dir) {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let opts = cli.gpu.options()?;
    match cli.command {
        Command::Info { json } => info(&opts, json),
        Command::Generate(args) => cli::generate::run(&opts, args),
        Command::Bench(args) => cli::bench::run(&opts, args),
        Command::Pull(args) => cli::pull::run(args),
        Command::WriteSynthetic {
            preset,
            dir,
            shard_size,
        } => {
            if !matches!(preset.as_str(), "20b" | "120b" | "tiny") {
                return Err(oss_wgpu::Error::argument(
                    "PRESET",
                    format!("unknown preset '{preset}'; choose 20b, 120b or tiny"),
                )
                .into());
            }
            let shard = gpu::parse_bytes(&shard_size).ok_or_else(|| {
                oss_wgpu::Error::argument(
                    "--shard-size",
                    format!("'{shard_size}' is not a byte count"),
                )
            })?;
            let config = oss_wgpu::model::synthetic::preset(&preset)?;
            let start = std::time::Instant::now();
            let total = oss_wgpu::checkpoint::writer::write_synthetic(&dir, &config, shard)?;
            eprintln!(
                "wrote {} of weights to {} in {:.1} s",
                bytes(total),
                dir.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect {
            json,
            ctx,
            check_values,
            dir,
        } => {
            let max_binding = cli
                .gpu
                .max_binding()?
                .unwrap_or(inspect::DEFAULT_MAX_BINDING);
            let dir = oss_wgpu::model::locate::resolve_one(&dir, "DIR")?;
            run_inspect(&dir, ctx, max_binding, json, check_values)
        }
    }
}

fn run_inspect(
    dir: &std::path::Path,
    ctx: Option<usize>,
    max_binding: u64,
    json: bool,
    check_values: bool,
) -> Result<ExitCode> {
    let progress = check_values.then(|| std::io::stderr().is_terminal());
    let report = match inspect::inspect_with(dir, ctx, max_binding, progress) {
        Ok(r) => r,
        Err(e) => {
            if json {
                let v = serde_json::json!({ "valid": false, "error": e.to_string() });
                out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
            } else {
                eprintln!("error: {e}");
            }
            let argument = matches!(e, oss_wgpu::Error::Argument { .. });
            return Ok(ExitCode::from(if argument { 2 } else { 1 }));
        }
    };
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_report(&report)
    };
    out(&text)?;
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    if let Some(v) = &r.values {
        let _ = writeln!(
            o,
            "values       {} tensors, {} read: {}",
            v.tensors,
            bytes(v.bytes),
            if v.issues.is_empty() {
                "no NaN or infinity, every MXFP4 scale plausible".to_string()
            } else {
                format!("{} tensors with bad values", v.issues.len())
            }
        );
        for i in &v.issues {
            let _ = writeln!(
                o,
                "bad values   {}: tensor {}: {} x {} (first at element {}: {})",
                i.file.display(),
                i.tensor,
                i.count,
                i.problem,
                i.first_index,
                i.first_value
            );
        }
    }
    if r.valid {
        let _ = writeln!(
            o,
            "valid        yes: every tensor present, with the dtype and shape the config implies{}",
            if r.values.is_some() {
                ", and finite values"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(o, "valid        no: bad values (above)");
    }
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
    use std::fmt::Write;
    let reports = gpu::adapter_reports(opts.backend);
    if json {
        out(&(serde_json::to_string_pretty(&reports)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if reports.is_empty() {
        eprintln!(
            "no adapters for backend '{}': install a GPU driver, or for a CPU Vulkan adapter \
             apt-get install mesa-vulkan-drivers",
            opts.backend
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut o = String::new();
    for r in &reports {
        let mark = if r.auto_selected { "  <- auto" } else { "" };
        let _ = writeln!(o, "[{}] {} ({}){mark}", r.index, r.name, r.backend);
        let _ = writeln!(
            o,
            "    vendor {}, {}, driver {} {}",
            r.vendor, r.device_type, r.driver, r.driver_info
        );
        let _ = writeln!(
            o,
            "    shader-f16 {}, subgroup {} (size {}..{}), timestamp-query {}, cooperative-matrix {}",
            yes(r.shader_f16),
            yes(r.subgroup),
            r.subgroup_min_size,
            r.subgroup_max_size,
            yes(r.timestamp_query),
            yes(r.cooperative_matrix)
        );
        let _ = writeln!(
            o,
            "    max buffer {} B, max storage binding {} B, workgroup storage {} B",
            r.max_buffer_size,
            r.max_storage_buffer_binding_size,
            r.max_compute_workgroup_storage_size
        );
    }
    out(&o)?;
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
