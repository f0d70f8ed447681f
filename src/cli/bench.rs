//! `oss-wgpu bench`: throughput against the bandwidth roofline, on one adapter or all.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use oss_wgpu::bench::{self, BenchOptions, BenchReport, KernelTime};
use oss_wgpu::checkpoint::{Checkpoint, WeightSource};
use oss_wgpu::gpu::{self, Gpu, GpuOptions};
use oss_wgpu::model::{locate, synthetic, Model};

#[derive(Args)]
pub struct BenchArgs {
    /// Checkpoint folder (or Hugging Face repo id in the cache) to benchmark.
    #[arg(short = 'm', long, conflicts_with = "synthetic")]
    model: Option<PathBuf>,
    /// Random weights with the exact shapes of a config, made on the GPU: 20b, 120b or tiny.
    #[arg(long)]
    synthetic: Option<String>,
    /// Prompt lengths for prefill, comma-separated (default 512,2048; 64 on a CPU adapter).
    #[arg(long, value_delimiter = ',')]
    pp: Option<Vec<usize>>,
    /// Cached tokens before each prefill prompt, comma-separated (default 0: an empty cache).
    #[arg(long, value_delimiter = ',')]
    pp_depths: Option<Vec<usize>>,
    /// Context depths for decode, comma-separated (default 0,4096; 0 on a CPU adapter).
    #[arg(long, value_delimiter = ',')]
    depths: Option<Vec<usize>>,
    /// Tokens generated per decode measurement (default 128; 16 on a CPU adapter).
    #[arg(long)]
    tg: Option<usize>,
    /// Timed repetitions after a warm-up (default 3; 1 on a CPU adapter).
    #[arg(long)]
    reps: Option<usize>,
    /// Skip the per-kernel profiles (each prefills a context of its own: minutes at depth
    /// 32768).
    #[arg(long)]
    no_profile: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Run on every adapter of every compiled backend.
    #[arg(long)]
    all_adapters: bool,
}

/// The options: the flags given, else defaults sized for the adapter. A CPU adapter runs
/// gpt-oss-20b's defaults for hours, so it gets small ones, and a warning says so.
fn options(a: &BenchArgs, cpu: bool) -> BenchOptions {
    let (pp, depths, tg, reps) = if cpu {
        (vec![64], vec![0], 16, 1)
    } else {
        (vec![512, 2048], vec![0, 4096], 128, 3)
    };
    let o = BenchOptions {
        prefill: a.pp.clone().unwrap_or(pp),
        prefill_depths: a.pp_depths.clone().unwrap_or(vec![0]),
        depths: a.depths.clone().unwrap_or(depths),
        tg: a.tg.unwrap_or(tg),
        reps: a.reps.unwrap_or(reps),
        profile: !a.no_profile,
    };
    let defaulted = a.pp.is_none() || a.depths.is_none() || a.tg.is_none() || a.reps.is_none();
    if cpu && defaulted {
        eprintln!(
            "bench: CPU adapter: small defaults (--pp {} --depths {} --tg {} --reps {}); \
             pass them to measure more (the GPU defaults take hours here)",
            join(&o.prefill),
            join(&o.depths),
            o.tg,
            o.reps
        );
    }
    o
}

fn join(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

fn one(opts: &GpuOptions, a: &BenchArgs) -> Result<BenchReport> {
    // The model's config first: sizes are checked against it before any GPU work.
    let source = match &a.synthetic {
        Some(preset) => Err(synthetic::preset(preset)?),
        None => {
            let dir = locate::resolve(a.model.as_deref())?;
            Ok((Checkpoint::open(&dir)?, dir))
        }
    };
    let config = match &source {
        Err(c) => c.clone(),
        Ok((ck, _)) => WeightSource::config(ck).clone(),
    };
    let gpu = Gpu::new(opts)?;
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let o = options(a, cpu);
    o.validate(&config)?;
    let phase = |what: &str| eprintln!("bench: {what}");
    phase(&format!("loading weights onto {}", gpu.adapter_name()));
    let start = Instant::now();
    let (model, name) = match source {
        Err(config) => (
            Model::synthetic(&gpu, &config, 1)?,
            format!("synthetic {}", a.synthetic.as_deref().unwrap_or("")),
        ),
        Ok((ck, dir)) => (
            Model::upload(&gpu, &ck, &dir, false)?,
            dir.display().to_string(),
        ),
    };
    let load_s = start.elapsed().as_secs_f64();
    let mut phase = phase;
    let mut r = bench::run(&gpu, &model, &name, &o, &mut phase)?;
    r.load_s = load_s;
    Ok(r)
}

/// One line per kernel: its dispatches, GPU time and share of `total`.
fn kernel_rows(o: &mut String, kernels: &[KernelTime], total: f64) {
    use std::fmt::Write;
    for k in kernels {
        let _ = writeln!(
            o,
            "    {:<44} x{:<4} {:>9.1} us  {:>5.1}%",
            k.kernel,
            k.dispatches,
            k.us,
            100.0 * k.us / total
        );
    }
}

fn print(o: &mut String, r: &BenchReport) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "{} ({}, {}) - {}",
        r.adapter,
        r.backend,
        r.driver.trim(),
        r.model
    );
    let _ = writeln!(
        o,
        "  f16 KV {}, subgroups {}; bandwidth {:.0} GB/s (bandwidth_read over {} MiB); {:.3} GB read per decode token",
        r.f16_kv,
        r.subgroups,
        r.bandwidth_gb_s,
        r.bandwidth_bytes >> 20,
        r.bytes_per_token as f64 / 1e9
    );
    let _ = writeln!(
        o,
        "  load {:.2} s (weights read and uploaded), setup {:.2} s (KV cache, activations, pipelines)",
        r.load_s, r.setup_s
    );
    for p in &r.prefill {
        let _ = writeln!(
            o,
            "  pp{:<6} @ depth {:<6} {:>9.1} tok/s  (min {:.1}, max {:.1})",
            p.tokens, p.depth, p.tok_s.median, p.tok_s.min, p.tok_s.max
        );
    }
    for d in &r.decode {
        let _ = writeln!(
        o,
            "  tg{:<4} @ depth {:<6} {:>8.1} tok/s  {:.3} ms/token  {:.0} GB/s = {:.1}% of roofline  (min {:.1}, max {:.1})",
            d.tokens,
            d.depth,
            d.tok_s.median,
            d.ms_per_token,
            d.effective_gb_s,
            100.0 * d.roofline_fraction,
            d.tok_s.min,
            d.tok_s.max
        );
    }
    for (depth, kernels) in &r.decode_kernels {
        let total: f64 = kernels.iter().map(|k| k.us).sum();
        let _ = writeln!(
        o,
            "  decode step at depth {depth}: GPU time per kernel, each dispatch in its own timed pass ({} dispatches, {:.1} us in all):",
            r.decode_dispatches, total
        );
        kernel_rows(o, kernels, total);
    }
    for (n, kernels) in &r.prefill_kernels {
        let total: f64 = kernels.iter().map(|k| k.us).sum();
        let _ = writeln!(
            o,
            "  prefill step of {n} tokens: GPU time per kernel ({:.1} us in all):",
            total
        );
        kernel_rows(o, kernels, total);
    }
    let m = &r.memory;
    let _ = writeln!(
        o,
        "  GPU memory allocated: {:.2} GB (planned {:.2} GB: weights {:.2}, KV cache {:.2}, \
         activations {:.2})",
        r.peak_gpu_bytes as f64 / 1e9,
        m.total() as f64 / 1e9,
        m.weights as f64 / 1e9,
        m.kv_cache as f64 / 1e9,
        m.activations as f64 / 1e9
    );
}

pub fn run(opts: &GpuOptions, a: BenchArgs) -> Result<ExitCode> {
    let mut reports = Vec::new();
    if a.all_adapters {
        let adapters = gpu::adapter_reports(gpu::BackendChoice::Auto);
        for r in adapters {
            let o = GpuOptions {
                backend: r.backend.parse()?,
                adapter: Some(r.name.clone()),
                ..opts.clone()
            };
            match one(&o, &a) {
                Ok(rep) => reports.push(rep),
                Err(e) => eprintln!("{} ({}): {}", r.name, r.backend, crate::error_text(&e)),
            }
        }
    } else {
        reports.push(one(opts, &a)?);
    }
    let mut text = String::new();
    if a.json {
        text = serde_json::to_string_pretty(&reports)? + "\n";
    } else {
        for r in &reports {
            print(&mut text, r);
        }
    }
    crate::out(&text)?;
    Ok(ExitCode::SUCCESS)
}
