//! Where the model is: `--model DIR`, else $OSS_WGPU_MODEL, else the Hugging Face cache's
//! snapshot of openai/gpt-oss-20b; otherwise an error that says how to get it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const DEFAULT_REPO: &str = "openai/gpt-oss-20b";

/// The hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
fn hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".cache/huggingface/hub"))
}

/// The snapshot of `repo` in the hub cache: the one refs/main names, else the newest.
pub fn hub_snapshot(repo: &str) -> Option<PathBuf> {
    let dir = hub_cache()?.join(format!("models--{}", repo.replace('/', "--")));
    if let Ok(rev) = std::fs::read_to_string(dir.join("refs/main")) {
        let p = dir.join("snapshots").join(rev.trim());
        if p.is_dir() {
            return Some(p);
        }
    }
    std::fs::read_dir(dir.join("snapshots"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

pub fn resolve(arg: Option<&Path>) -> Result<PathBuf> {
    let chosen = arg
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("OSS_WGPU_MODEL").map(PathBuf::from))
        .or_else(|| hub_snapshot(DEFAULT_REPO));
    match chosen {
        Some(p) if p.is_dir() => Ok(p),
        Some(p) => Err(Error::argument(
            "--model",
            format!("{} is not a folder", p.display()),
        )),
        None => Err(Error::argument(
            "--model",
            format!(
                "no model given and none found. Pass --model DIR or set OSS_WGPU_MODEL, or download \
                 {DEFAULT_REPO} into the Hugging Face cache: `huggingface-cli download {DEFAULT_REPO}` \
                 (about 13 GB)"
            ),
        )),
    }
}
