//! `oss-wgpu pull`: a model into the Hugging Face cache, or a check of what is there.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use oss_wgpu::hub;
use oss_wgpu::model::locate;

#[derive(Args)]
pub struct PullArgs {
    /// Hugging Face repo id.
    #[arg(default_value = locate::DEFAULT_REPO)]
    repo: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Use only what is in the cache: check it, download nothing (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
}

pub fn run(a: PullArgs) -> Result<ExitCode> {
    if !locate::is_repo_id(&a.repo) {
        return Err(oss_wgpu::Error::argument(
            "REPO",
            format!("'{}' is not a repo id (owner/name)", a.repo),
        )
        .into());
    }
    let cache = locate::hub_cache().ok_or_else(|| {
        oss_wgpu::Error::argument("REPO", "no cache folder: set HF_HUB_CACHE or HOME")
    })?;
    let progress = std::io::stderr().is_terminal();
    let offline = a.offline || hub::offline_from_env();
    let dir = if offline {
        locate::hub_snapshot_in(&cache, &a.repo, &a.revision).ok_or_else(|| {
            oss_wgpu::Error::argument(
                "REPO",
                format!(
                    "{} at {} is not in the cache ({}) and downloads are off (--offline or \
                     HF_HUB_OFFLINE)",
                    a.repo,
                    a.revision,
                    cache.display()
                ),
            )
        })?
    } else {
        download(&cache, &a, progress)?
    };
    let check = hub::check_snapshot(&dir, progress)?;
    let bytes: u64 = check.files.iter().map(|f| f.1).sum();
    eprintln!(
        "{}: {} files, {}, {} weight files verified by SHA-256",
        a.repo,
        check.files.len(),
        crate::bytes(bytes),
        check.verified
    );
    crate::out(&format!("{}\n", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "pull")]
fn download(cache: &std::path::Path, a: &PullArgs, progress: bool) -> Result<std::path::PathBuf> {
    Ok(hub::download(cache, &a.repo, &a.revision, progress)?)
}

#[cfg(not(feature = "pull"))]
fn download(_cache: &std::path::Path, a: &PullArgs, _progress: bool) -> Result<std::path::PathBuf> {
    Err(oss_wgpu::Error::argument(
        "pull",
        format!(
            "this build has no downloader (rebuild with `cargo build --release --features pull`), \
             or download with `huggingface-cli download {} --exclude 'original/*' 'metal/*'`; \
             `oss-wgpu pull --offline {}` then checks the cache",
            a.repo, a.repo
        ),
    )
    .into())
}
