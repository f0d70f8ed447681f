//! `oss-wgpu write-synthetic` (hidden): a checkpoint of a preset's exact shapes with seeded
//! random weights, written to disk in the Hugging Face MXFP4 layout by the project's checkpoint
//! writer, so that the whole load -> serve path runs at full size without a download. Its
//! tokenizer is copied from a file (the binary has no o200k vocabulary to write one).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use oss_wgpu::checkpoint::writer::{WeightSet, WriteLayout};
use oss_wgpu::model::synthetic;

#[derive(Args)]
pub struct SyntheticArgs {
    /// 20b, 120b or tiny.
    #[arg(long, default_value = "20b")]
    pub preset: String,
    /// tokenizer.json to copy in (any harmony vocabulary; ids above it never decode).
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Safetensors shards.
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Output folder.
    pub dir: PathBuf,
}

pub fn run(a: SyntheticArgs) -> Result<ExitCode> {
    let config = synthetic::preset(&a.preset)?;
    let start = std::time::Instant::now();
    eprintln!("generating {} weights", a.preset);
    let weights = WeightSet::random(&config, a.seed);
    eprintln!(
        "writing {} ({:.0} s so far)",
        a.dir.display(),
        start.elapsed().as_secs_f64()
    );
    weights.write(
        &a.dir,
        WriteLayout::HfMxfp4 {
            shards: a.shards.max(1),
        },
    )?;
    std::fs::copy(&a.tokenizer, a.dir.join("tokenizer.json"))
        .with_context(|| format!("copying {}", a.tokenizer.display()))?;
    eprintln!("done in {:.0} s", start.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
