//! The Hugging Face cache, as `oss-wgpu pull` fills and checks it. Layout (huggingface_hub's):
//! `models--OWNER--NAME/refs/REVISION` holds a commit hash, `snapshots/COMMIT/FILE` is a
//! symlink into `blobs/`, and a weight file's blob is named by the SHA-256 of its content,
//! which is how a download is checked here without the network.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::checkpoint::shards::{EXTENSION, INDEX};
use crate::error::{comma_list, Error, Result};

/// Files of a repo the engine uses: the top-level JSON files (config, generation config,
/// tokenizer, index) and weights. The hub's `original/` and `metal/` copies of the weights are
/// left out: they would double or triple the download.
pub fn needed(file: &str) -> bool {
    !file.contains('/') && (file.ends_with(".json") || file.ends_with(&format!(".{EXTENSION}")))
}

/// What a checked snapshot holds.
#[derive(Debug, Clone)]
pub struct SnapshotCheck {
    pub dir: PathBuf,
    /// Files present, with their sizes.
    pub files: Vec<(String, u64)>,
    /// Weight files whose SHA-256 matched their blob name.
    pub verified: usize,
}

/// The files a snapshot must hold for the engine: config.json, tokenizer.json, and the
/// index's shards (or at least one safetensors file without an index).
fn required(dir: &Path) -> Result<Vec<String>> {
    let mut want = vec!["config.json".to_string(), "tokenizer.json".to_string()];
    let index = dir.join(INDEX);
    if index.exists() {
        want.push(INDEX.to_string());
        let text = crate::fsutil::read_to_string(&index)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: index.clone(),
            message: e.to_string(),
        })?;
        let mut shards: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        want.extend(shards);
    } else {
        let any = std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
        });
        if !any {
            want.push(INDEX.to_string());
        }
    }
    Ok(want)
}

/// The SHA-256 a snapshot file must have: its blob's name, when that is 64 hex digits (the
/// hub names weight blobs so; small files are named by their git SHA-1 and are not checked).
fn expected_sha256(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    let name = target.file_name()?.to_str()?.to_string();
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

fn sha256_file(path: &Path, bar: &ProgressBar) -> Result<String> {
    use std::io::Read;
    let mut f = crate::fsutil::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bar.inc(n as u64);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// Checks that `dir` (a snapshot folder) holds every file the engine needs and that every
/// weight file's content matches its checksum; hashes on every core, with a progress bar on
/// stderr when `progress`.
pub fn check_snapshot(dir: &Path, progress: bool) -> Result<SnapshotCheck> {
    let want = required(dir)?;
    let missing: Vec<&String> = want.iter().filter(|f| !dir.join(f).exists()).collect();
    if !missing.is_empty() {
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("incomplete download: {} missing", comma_list(&missing)),
        });
    }
    let mut files = Vec::new();
    for f in &want {
        let len = crate::fsutil::regular_file(&dir.join(f))?;
        files.push((f.clone(), len));
    }
    let to_hash: Vec<(PathBuf, String, u64)> = files
        .iter()
        .filter_map(|(f, len)| {
            let p = dir.join(f);
            expected_sha256(&p).map(|h| (p, h, *len))
        })
        .collect();
    let total: u64 = to_hash.iter().map(|t| t.2).sum();
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "verifying {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let bad: Mutex<Vec<Error>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(to_hash.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, want, _)) = to_hash.get(i) else {
                    break;
                };
                let e = match sha256_file(path, &bar) {
                    Ok(got) if &got == want => continue,
                    Ok(got) => Error::Checkpoint {
                        path: path.clone(),
                        message: format!(
                            "checksum mismatch: expected SHA-256 {want}, got {got} (damaged or \
                             partial download: delete it and pull again)"
                        ),
                    },
                    Err(e) => e,
                };
                bad.lock().unwrap_or_else(|p| p.into_inner()).push(e);
            });
        }
    });
    bar.finish_and_clear();
    let mut bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
    if !bad.is_empty() {
        bad.sort_by_key(|e| e.to_string());
        return Err(bad.remove(0));
    }
    Ok(SnapshotCheck {
        dir: dir.to_path_buf(),
        files,
        verified: to_hash.len(),
    })
}

/// HF_HUB_OFFLINE as huggingface_hub reads it.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Downloads the files the engine needs of `repo` at `revision` into the hub cache (resuming
/// and skipping what is there), then checks the snapshot. Needs the `pull` feature.
#[cfg(feature = "pull")]
pub fn download(cache: &Path, repo: &str, revision: &str, progress: bool) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    let net = |e: hf_hub::api::sync::ApiError| Error::Checkpoint {
        path: crate::model::locate::repo_dir(cache, repo),
        message: format!("download from the Hugging Face Hub failed: {e}"),
    };
    let mut builder = ApiBuilder::new()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(progress);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(net)?;
    let r = api.repo(hf_hub::Repo::with_revision(
        repo.to_string(),
        hf_hub::RepoType::Model,
        revision.to_string(),
    ));
    let info = r.info().map_err(net)?;
    let mut files: Vec<String> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.clone())
        .filter(|f| needed(f))
        .collect();
    files.sort();
    // Small files first: a bad repo id or revision fails before gigabytes move.
    files.sort_by_key(|f| f.ends_with(&format!(".{EXTENSION}")));
    let mut dir = None;
    for f in &files {
        let p = r.get(f).map_err(net)?;
        dir = p.parent().map(Path::to_path_buf);
    }
    let dir = dir.ok_or_else(|| Error::Checkpoint {
        path: crate::model::locate::repo_dir(cache, repo),
        message: format!("{repo} at {revision} has no config, tokenizer or weight files"),
    })?;
    check_snapshot(&dir, progress)?;
    Ok(dir)
}
