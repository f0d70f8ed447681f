//! The oss-wgpu command line: argument parsing and printing only; the work is in the library.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

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
    /// Lower the largest storage binding (bytes; K/M/G suffixes allowed); larger tensors are split.
    #[arg(long, global = true, env = "OSS_WGPU_MAX_BINDING")]
    max_binding_bytes: Option<String>,
}

impl GpuArgs {
    fn options(&self) -> Result<GpuOptions> {
        let backend: BackendChoice = self.backend.parse()?;
        let max_binding_bytes = match &self.max_binding_bytes {
            None => None,
            Some(s) => Some(gpu::parse_bytes(s).ok_or_else(|| {
                oss_wgpu::Error::argument("--max-binding-bytes", format!("'{s}' is not a byte count"))
            })?),
        };
        Ok(GpuOptions {
            backend,
            adapter: self.adapter.clone(),
            portable: self.portable,
            max_binding_bytes,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter of every compiled backend and what it offers.
    Info {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
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
    }
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
        println!("    vendor {}, {}, driver {} {}", r.vendor, r.device_type, r.driver, r.driver_info);
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
            r.max_buffer_size, r.max_storage_buffer_binding_size, r.max_compute_workgroup_storage_size
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
