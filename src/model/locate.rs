//! Where the model is: `--model DIR` or `--model OWNER/NAME` (a repo in the Hugging Face
//! cache), else $OSS_WGPU_MODEL (either form), else the cache's snapshot of
//! openai/gpt-oss-20b; otherwise an error that says how to get it.
//!
//! The cache is found as huggingface_hub finds it: $HF_HUB_CACHE, else
//! $HUGGINGFACE_HUB_CACHE (the older name), else $HF_HOME/hub, else
//! $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const DEFAULT_REPO: &str = "openai/gpt-oss-20b";

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The hub cache folder (which need not exist yet).
pub fn hub_cache() -> Option<PathBuf> {
    if let Some(p) = env_path("HF_HUB_CACHE").or_else(|| env_path("HUGGINGFACE_HUB_CACHE")) {
        return Some(p);
    }
    if let Some(p) = env_path("HF_HOME") {
        return Some(p.join("hub"));
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return Some(p.join("huggingface/hub"));
    }
    let home = env_path("HOME").or_else(|| env_path("USERPROFILE"))?;
    Some(home.join(".cache/huggingface/hub"))
}

/// The cache folder of `repo`: `models--owner--name`.
pub fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Is `s` shaped like a Hugging Face repo id (`owner/name`, no other separators)?
pub fn is_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The snapshot of `repo` in the hub cache at `revision` (a branch in refs/, or a commit
/// hash); for "main" without refs/main, the newest snapshot.
pub fn hub_snapshot_in(cache: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let dir = repo_dir(cache, repo);
    let commit = crate::fsutil::read_to_string(&dir.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let p = dir.join("snapshots").join(&commit);
    if p.is_dir() {
        return Some(p);
    }
    if revision != "main" {
        return None;
    }
    std::fs::read_dir(dir.join("snapshots"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The snapshot of `repo` (refs/main, else the newest) in the hub cache.
pub fn hub_snapshot(repo: &str) -> Option<PathBuf> {
    hub_snapshot_in(&hub_cache()?, repo, "main")
}

fn cache_text() -> String {
    hub_cache().map_or_else(
        || "no cache folder: set HF_HUB_CACHE or HOME".to_string(),
        |c| c.display().to_string(),
    )
}

/// A folder, or a repo id looked up in the cache. `what` names the argument in messages.
pub fn resolve_one(p: &Path, what: &str) -> Result<PathBuf> {
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let text = p.to_string_lossy();
    if !p.exists() && is_repo_id(&text) {
        return hub_snapshot(&text).ok_or_else(|| {
            Error::argument(
                what,
                format!(
                    "{text} is neither a folder nor in the Hugging Face cache ({}); download it \
                     with `oss-wgpu pull {text}`",
                    cache_text()
                ),
            )
        });
    }
    Err(Error::argument(
        what,
        if p.exists() {
            format!("{} is not a folder", p.display())
        } else {
            format!("{} does not exist", p.display())
        },
    ))
}

pub fn resolve(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return resolve_one(p, "--model");
    }
    if let Some(p) = env_path("OSS_WGPU_MODEL") {
        return resolve_one(&p, "OSS_WGPU_MODEL");
    }
    hub_snapshot(DEFAULT_REPO).ok_or_else(|| {
        Error::argument(
            "--model",
            format!(
                "no model given and {DEFAULT_REPO} is not in the Hugging Face cache ({}). Pass \
                 --model DIR or a repo id, set OSS_WGPU_MODEL, or download it: `oss-wgpu pull \
                 {DEFAULT_REPO}` (about 13 GB)",
                cache_text()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in ["openai/gpt-oss-20b", "a/b", "org_1/m.v2"] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/b",
            "a/b/c",
            "./x",
            "../x",
            "a/",
            "a b/c",
            "tests/fixtures/x/",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn snapshots_by_ref_and_by_commit() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo_dir(cache.path(), "o/m");
        std::fs::create_dir_all(repo.join("snapshots/abc")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/def")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc\n").unwrap();
        let snap = |r| hub_snapshot_in(cache.path(), "o/m", r);
        assert_eq!(snap("main"), Some(repo.join("snapshots/abc")));
        assert_eq!(snap("def"), Some(repo.join("snapshots/def")));
        assert_eq!(snap("nope"), None);
        assert_eq!(hub_snapshot_in(cache.path(), "o/other", "main"), None);
    }
}
