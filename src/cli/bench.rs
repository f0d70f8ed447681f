//! `oss-wgpu bench`: throughput against the bandwidth roofline, on one adapter or all.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use oss_wgpu::bench::{self, BenchOptions, BenchReport};
use oss_wgpu::gpu::{self, Gpu, GpuOptions};
use oss_wgpu::model::{locate, synthetic, Model};

#[derive(Args)]
pub struct BenchArgs {
    /// Checkpoint folder to benchmark.
    #[arg(long, conflicts_with = "synthetic")]
    model: Option<PathBuf>,
    /// Random weights with the exact shapes of a config, made on the GPU: 20b, 120b or tiny.
    #[arg(long)]
    synthetic: Option<String>,
    /// Prompt lengths for prefill, comma-separated.
    #[arg(long, default_value = "512,2048", value_delimiter = ',')]
    pp: Vec<usize>,
    /// Context depths for decode, comma-separated.
    #[arg(long, default_value = "0,4096", value_delimiter = ',')]
    depths: Vec<usize>,
    /// Tokens generated per decode measurement.
    #[arg(long, default_value_t = 128)]
    tg: usize,
    /// Timed repetitions (after a warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Run on every adapter of every compiled backend.
    #[arg(long)]
    all_adapters: bool,
}

fn one(opts: &GpuOptions, a: &BenchArgs) -> Result<BenchReport> {
    let gpu = Gpu::new(opts)?;
    let (model, name) = match &a.synthetic {
        Some(preset) => {
            let config = synthetic::preset(preset)?;
            (
                Model::synthetic(&gpu, &config, 1)?,
                format!("synthetic {preset}"),
            )
        }
        None => {
            let dir = locate::resolve(a.model.as_deref())?;
            (Model::load(&gpu, &dir, false)?, dir.display().to_string())
        }
    };
    let o = BenchOptions {
        prefill: a.pp.clone(),
        depths: a.depths.clone(),
        tg: a.tg.max(2),
        reps: a.reps.max(1),
    };
    Ok(bench::run(&gpu, &model, &name, &o)?)
}

fn print(r: &BenchReport) {
    println!(
        "{} ({}, {}) - {}",
        r.adapter,
        r.backend,
        r.driver.trim(),
        r.model
    );
    println!(
        "  f16 KV {}, subgroups {}; bandwidth {:.0} GB/s (bandwidth_read over {} MiB); {:.3} GB read per decode token",
        r.f16_kv,
        r.subgroups,
        r.bandwidth_gb_s,
        r.bandwidth_bytes >> 20,
        r.bytes_per_token as f64 / 1e9
    );
    for p in &r.prefill {
        println!(
            "  pp{:<6} {:>9.1} tok/s  (min {:.1}, max {:.1})",
            p.tokens, p.tok_s.median, p.tok_s.min, p.tok_s.max
        );
    }
    for d in &r.decode {
        println!(
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
        println!(
            "  decode step at depth {depth}: GPU time per kernel, each dispatch in its own timed pass ({} dispatches, {:.1} us in all):",
            r.decode_dispatches, total
        );
        for k in kernels {
            println!(
                "    {:<44} x{:<4} {:>9.1} us  {:>5.1}%",
                k.kernel,
                k.dispatches,
                k.us,
                100.0 * k.us / total
            );
        }
    }
    for (n, kernels) in &r.prefill_kernels {
        let total: f64 = kernels.iter().map(|k| k.us).sum();
        println!(
            "  prefill step of {n} tokens: GPU time per kernel ({:.1} us in all):",
            total
        );
        for k in kernels {
            println!(
                "    {:<44} x{:<4} {:>9.1} us  {:>5.1}%",
                k.kernel,
                k.dispatches,
                k.us,
                100.0 * k.us / total
            );
        }
    }
    println!(
        "  GPU memory allocated: {:.2} GB",
        r.peak_gpu_bytes as f64 / 1e9
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
                Err(e) => eprintln!("{} ({}): {e:#}", r.name, r.backend),
            }
        }
    } else {
        reports.push(one(opts, &a)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print(r);
        }
    }
    Ok(ExitCode::SUCCESS)
}
