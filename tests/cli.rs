//! The command line, through the built binary: hostile inputs end in a clear error (exit 1, or
//! 2 for a bad argument) and never in a panic, a hang or garbage output; conventions (short
//! flags, positional prompt, global switches anywhere, stdin, closed pipes); model discovery in
//! the Hugging Face cache and `pull` against a cache folder made here. No network.
//!
//! GPU work is kept to a few short runs on the tiny checkpoint: the rest stops before the GPU.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use oss_wgpu::checkpoint::{LayerTensor, TensorId};
use oss_wgpu::testing::writer::{tiny_config, tokenizer_json, write_json, WeightSet, WriteLayout};

mod common;

/// The binary under test (the staged one when the tests run on a machine without Rust).
fn bin() -> String {
    common::oss_wgpu_bin().to_string_lossy().into_owned()
}
/// A hang shows as a timeout, not as a stuck test run.
const TIMEOUT: Duration = Duration::from_secs(60);
const HUGE: &str = "18446744073709551615";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs the binary with `args` (and `env`), stdin from `stdin` (closed when None), killed
/// after TIMEOUT.
fn run_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Discovery must not find a model of the machine running the tests.
    for k in [
        "OSS_WGPU_MODEL",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
        "HF_HUB_OFFLINE",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run oss-wgpu");
    if let Some(text) = stdin {
        let mut i = child.stdin.take().unwrap();
        i.write_all(text.as_bytes()).unwrap();
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > TIMEOUT {
            child.kill().unwrap();
            panic!("oss-wgpu {args:?} did not finish in {TIMEOUT:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> Output {
    run_with(args, &[], None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts exit `code`, an `error:` line that names each of `names`, no panic, and no wrapped
/// size (a number near 2^64).
fn fails(o: &Output, code: i32, names: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}, stderr:\n{err}\nstdout:\n{}",
        o.status,
        text(&o.stdout)
    );
    assert!(!err.contains("panicked"), "panic:\n{err}");
    assert!(err.contains("error"), "no error message:\n{err}");
    for n in names {
        assert!(err.contains(n), "{n:?} not named in:\n{err}");
    }
    for wrapped in ["1844674407370955", "4294967295"] {
        // The huge value a user typed may be echoed; a computed wrapped size may not.
        let typed = err.matches(HUGE).count();
        assert!(
            err.matches(wrapped).count() <= typed,
            "a wrapped size in:\n{err}"
        );
    }
    err
}

fn succeeds(o: &Output) -> (String, String) {
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        o.status.success(),
        "failed: {:?}\nstderr:\n{err}\nstdout:\n{out}",
        o.status
    );
    (out, err)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A writable copy of tiny-a.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-a"), dir.path());
    dir
}

fn tiny() -> String {
    fixture("tiny-a").display().to_string()
}

// ---- panics, aborts and hangs ----

#[cfg(unix)]
#[test]
fn a_shard_that_is_a_fifo_or_a_folder_is_an_error_not_a_hang() {
    let dir = tiny_copy();
    let shard = dir.path().join("model-00001-of-00001.safetensors");
    std::fs::remove_file(&shard).unwrap();
    let made = Command::new("mkfifo").arg(&shard).status().unwrap();
    assert!(made.success());
    let d = dir.path().to_str().unwrap();
    fails(&run(&["inspect", d]), 1, &["named pipe", "model-00001"]);
    fails(
        &run(&["generate", "-m", d, "--prompt-ids", "1,2", "-n", "1"]),
        1,
        &["named pipe"],
    );
    // A FIFO in place of config.json or tokenizer.json: same.
    std::fs::remove_file(&shard).unwrap();
    std::fs::create_dir(&shard).unwrap();
    fails(&run(&["inspect", d]), 1, &["is a directory", "model-00001"]);
    let dir = tiny_copy();
    let config = dir.path().join("config.json");
    std::fs::remove_file(&config).unwrap();
    Command::new("mkfifo").arg(&config).status().unwrap();
    fails(
        &run(&["inspect", dir.path().to_str().unwrap()]),
        1,
        &["named pipe", "config.json"],
    );
}

#[test]
fn huge_sizes_are_argument_errors_naming_the_flag() {
    let t = tiny();
    fails(&run(&["inspect", &t, "--ctx", HUGE]), 2, &["--ctx"]);
    fails(&run(&["inspect", &t, "--ctx", "0"]), 2, &["--ctx"]);
    fails(
        &run(&["generate", "-m", &t, "--prompt-ids", "1,2", "-n", HUGE]),
        2,
        &["--max-tokens"],
    );
    fails(
        &run(&["generate", "-m", &t, "--prompt-ids", "1,2", "--ctx", HUGE]),
        2,
        &["--ctx"],
    );
    for (flag, args) in [
        (
            "--pp",
            vec!["--pp", HUGE, "--depths", "0", "--tg", "2", "--reps", "1"],
        ),
        (
            "--pp",
            vec!["--pp", "1000000000000", "--depths", "0", "--tg", "2"],
        ),
        ("--tg", vec!["--pp", "8", "--depths", "0", "--tg", HUGE]),
        ("--depths", vec!["--pp", "8", "--depths", HUGE, "--tg", "2"]),
        (
            "--pp-depths",
            vec![
                "--pp",
                "8",
                "--pp-depths",
                HUGE,
                "--depths",
                "0",
                "--tg",
                "2",
            ],
        ),
        ("--pp", vec!["--pp", "0"]),
    ] {
        let mut a = vec!["bench", "-m", &t];
        a.extend(args.iter().copied());
        fails(&run(&a), 2, &[flag]);
    }
    fails(
        &run(&["bench", "--synthetic", "tiny", "--pp", HUGE, "--tg", "2"]),
        2,
        &["--pp"],
    );

    // A model that claims 4 billion positions: a --ctx that large is refused before the
    // CPU builds a RoPE table of hundreds of gigabytes.
    let mut c = tiny_config();
    c.max_position_embeddings = 4_000_000_000;
    let ws = WeightSet::random(&c, 3);
    let dir = write_set(&ws);
    let d = dir.path().to_str().unwrap();
    fails(
        &run(&[
            "generate",
            "-m",
            d,
            "--prompt-ids",
            "1",
            "-n",
            "1",
            "-c",
            "3999999999",
        ]),
        2,
        &["--ctx", "RoPE"],
    );
}

// ---- silent garbage ----

fn write_set(ws: &WeightSet) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), WriteLayout::HfMxfp4 { shards: 1 })
        .unwrap();
    dir
}

fn fill(ws: &mut WeightSet, id: TensorId, bits: u16) {
    let t = ws.tensors.get_mut(&id).unwrap();
    for c in t.data.chunks_exact_mut(2) {
        c.copy_from_slice(&bits.to_le_bytes());
    }
}

#[test]
fn non_finite_logits_stop_generation_and_check_values_finds_the_tensor() {
    let base = WeightSet::random(&tiny_config(), 0x5eed);
    let mut nan_embed = WeightSet::random(&tiny_config(), 0x5eed);
    fill(&mut nan_embed, TensorId::Embedding, 0x7fc0);
    let mut inf_head = WeightSet::random(&tiny_config(), 0x5eed);
    fill(&mut inf_head, TensorId::LmHead, 0x7f80);
    let mut big_scale = WeightSet::random(&tiny_config(), 0x5eed);
    big_scale
        .tensors
        .get_mut(&TensorId::Layer(1, LayerTensor::DownScales))
        .unwrap()
        .data[5] = 0xFE;

    let good = write_set(&base);
    let g = good.path().to_str().unwrap();
    let (out, _) = succeeds(&run(&["inspect", g, "--check-values"]));
    assert!(out.contains("finite values"), "{out}");

    for (ws, tensor) in [
        (&nan_embed, "model.embed_tokens.weight"),
        (&inf_head, "lm_head.weight"),
        (&big_scale, "model.layers.1.mlp.experts.down_proj_scales"),
    ] {
        let dir = write_set(ws);
        let d = dir.path().to_str().unwrap();
        // Without the value scan the header checks pass.
        succeeds(&run(&["inspect", d]));
        let o = run(&["inspect", d, "--check-values"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
        let out = text(&o.stdout);
        assert!(
            out.contains(tensor) && out.contains("valid        no"),
            "{out}"
        );
        let o = run(&["inspect", d, "--check-values", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["valid"], false);
        assert_eq!(v["values"]["issues"][0]["tensor"], tensor);
    }

    // One NaN row of lm_head: one NaN logit among finite ones, which greedy argmax would
    // otherwise step over (the lm_head matvec marks its workgroup).
    let mut nan_row = WeightSet::random(&tiny_config(), 0x5eed);
    let hidden = nan_row.config.hidden_size;
    let head = nan_row.tensors.get_mut(&TensorId::LmHead).unwrap();
    for c in head.data[7 * hidden * 2..8 * hidden * 2].chunks_exact_mut(2) {
        c.copy_from_slice(&0x7fc0u16.to_le_bytes());
    }

    // Greedy (the lm_head's per-workgroup maxima) and sampled (the full logits) both stop.
    for ws in [&nan_embed, &inf_head, &nan_row] {
        let dir = write_set(ws);
        let d = dir.path().to_str().unwrap();
        for t in ["0", "1"] {
            let o = run(&[
                "generate",
                "-m",
                d,
                "--prompt-ids",
                "1,2,3",
                "-n",
                "4",
                "-t",
                t,
                "--output",
                "ids",
            ]);
            fails(&o, 1, &["non-finite logits", "step 0"]);
            assert!(
                !text(&o.stdout).contains("4294967295"),
                "{}",
                text(&o.stdout)
            );
        }
    }
}

#[test]
fn tokenizers_are_validated() {
    let ws = WeightSet::random(&tiny_config(), 7);
    let dir = write_set(&ws);
    let d = dir.path().to_str().unwrap();
    succeeds(&run(&["inspect", d]));
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, "{\"not\": \"a tokenizer\"}").unwrap();
    fails(&run(&["inspect", d]), 1, &["tokenizer.json"]);
    std::fs::remove_file(&tok).unwrap();
    fails(&run(&["inspect", d]), 1, &["tokenizer.json"]);
    // A tokenizer with more ids than the model's vocabulary (tiny-a's has 390; the model 300).
    std::fs::copy(fixture("tiny-a").join("tokenizer.json"), &tok).unwrap();
    fails(&run(&["inspect", d]), 1, &["tokenizer.json", "vocabulary"]);
    let o = run(&["generate", "-m", d, "-n", "1", "hello <|return|>"]);
    let err = fails(&o, 1, &["tokenizer.json", "vocabulary"]);
    assert!(!err.contains("--prompt-ids"), "blames --prompt-ids:\n{err}");
    // The writer's own tokenizer fits.
    write_json(&tok, &tokenizer_json(ws.config.vocab_size)).unwrap();
    succeeds(&run(&["inspect", d]));
}

#[test]
fn sampling_flags_are_validated() {
    let t = tiny();
    for (flag, v) in [
        ("--temperature", "nan"),
        ("--temperature", "-1"),
        ("--temperature", "inf"),
        ("--temp", "-0.5"),
        ("--top-p", "1.5"),
        ("--top-p", "nan"),
        ("--top-p", "0"),
        ("--top-p", "-0.1"),
    ] {
        // FLAG=VALUE: a value starting with '-' is otherwise taken for a switch.
        let arg = format!("{flag}={v}");
        let o = run(&["generate", "-m", &t, "--prompt-ids", "1", &arg]);
        let err = fails(&o, 2, &[v]);
        assert!(
            err.contains("--temperature") || err.contains("--top-p"),
            "{err}"
        );
    }
}

// ---- conventions ----

/// The ids line of `--output ids`.
fn ids(out: &str) -> String {
    out.lines().last().unwrap_or("").to_string()
}

#[test]
fn short_flags_positional_prompt_stdin_and_global_switches() {
    let t = tiny();
    let long = run(&[
        "generate",
        "--model",
        &t,
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        "3",
        "--prompt",
        "Once upon",
        "--output",
        "ids",
    ]);
    let (long_out, _) = succeeds(&long);
    // Short flags and a positional prompt, global switch before the subcommand.
    let short = run(&[
        "--backend",
        "auto",
        "generate",
        "-m",
        &t,
        "--raw",
        "-t",
        "0",
        "-n",
        "3",
        "--output",
        "ids",
        "Once upon",
    ]);
    assert_eq!(ids(&succeeds(&short).0), ids(&long_out));
    // The prompt piped on stdin.
    let piped = run_with(
        &[
            "generate", "-m", &t, "--raw", "--temp", "0", "-n", "3", "--output", "ids",
        ],
        &[],
        Some("Once upon"),
    );
    assert_eq!(ids(&succeeds(&piped).0), ids(&long_out));
    // Switches before or after the subcommand, including the boolean ones that used to eat
    // the next word.
    succeeds(&run(&["--portable", "inspect", &t]));
    succeeds(&run(&["--shader-checks", "--portable", "inspect", &t]));
    succeeds(&run(&["inspect", &t, "--portable"]));
    succeeds(&run_with(
        &["inspect", &t],
        &[("OSS_WGPU_PORTABLE", "1")],
        None,
    ));
}

#[test]
fn max_tokens_defaults_to_the_context_left() {
    // tiny-a allows 256 positions; the old fixed default of 1024 was refused.
    let o = run(&[
        "generate",
        "-m",
        &tiny(),
        "--prompt-ids",
        "1,2,3,4",
        "-c",
        "12",
        "-t",
        "0",
    ]);
    let (_, err) = succeeds(&o);
    let generated: usize = err
        .split("generated ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stats line:\n{err}"));
    assert!((1..=8).contains(&generated), "{err}");
}

#[test]
fn os_errors_are_printed_once_and_dump_logits_is_checked_first() {
    let dir = tiny_copy();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = fails(
        &run(&[
            "generate",
            "-m",
            dir.path().to_str().unwrap(),
            "--prompt-ids",
            "1",
        ]),
        1,
        &["config.json"],
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");

    let o = run(&[
        "generate",
        "-m",
        &tiny(),
        "--prompt-ids",
        "1",
        "--dump-logits",
        "/nonexistent-folder/logits.npy",
    ]);
    let err = fails(&o, 1, &["--dump-logits", "/nonexistent-folder/logits.npy"]);
    assert!(!err.contains("prefill"), "generated before failing:\n{err}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(bin())
        .args([
            "generate",
            "-m",
            &tiny(),
            "--raw",
            "-t",
            "0",
            "-n",
            "64",
            "--ctx",
            "128",
            "Once",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 5];
    let mut out = child.stdout.take().unwrap();
    let _ = out.read(&mut first);
    drop(out);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < TIMEOUT, "hung after the pipe closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{:?}\n{err}", o.status);
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
}

#[test]
fn no_xdg_runtime_dir_noise() {
    let o = Command::new(bin())
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(
        !text(&o.stderr).contains("XDG_RUNTIME_DIR"),
        "{}",
        text(&o.stderr)
    );
}

// ---- the model, found or fetched ----

/// A hub cache holding tiny-a as openai/gpt-oss-20b, laid out as huggingface_hub lays it out:
/// blobs named by SHA-256 (weights) or another hash (small files), snapshots as symlinks.
#[cfg(unix)]
fn hub_cache() -> (tempfile::TempDir, PathBuf) {
    use sha2::{Digest, Sha256};
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--openai--gpt-oss-20b");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for e in std::fs::read_dir(fixture("tiny-a")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let hash: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // Small files are named by a git SHA-1 on the hub (40 digits, not checked).
        let blob = if name.ends_with(".safetensors") {
            hash
        } else {
            hash[..40].to_string()
        };
        std::fs::write(repo.join("blobs").join(&blob), &data).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(&name)).unwrap();
    }
    (cache, snap)
}

#[cfg(unix)]
#[test]
fn repo_ids_resolve_through_every_cache_variable() {
    let (cache, snap) = hub_cache();
    let c = cache.path().to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("huggingface")).unwrap();
    // $XDG_CACHE_HOME/huggingface/hub and $HF_HOME/hub.
    std::os::unix::fs::symlink(cache.path(), home.path().join("huggingface/hub")).unwrap();
    std::os::unix::fs::symlink(cache.path(), home.path().join("hub")).unwrap();
    let h = home.path().to_str().unwrap();
    for env in [
        [("HF_HUB_CACHE", c), ("HOME", "/nonexistent")],
        [("HUGGINGFACE_HUB_CACHE", c), ("HOME", "/nonexistent")],
        [("HF_HOME", h), ("HOME", "/nonexistent")],
        [("XDG_CACHE_HOME", h), ("HOME", "/nonexistent")],
    ] {
        let o = run_with(&["inspect", "openai/gpt-oss-20b", "--json"], &env, None);
        let (out, _) = succeeds(&o);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        // The same snapshot, reached through the variable's own path (symlinks kept).
        let dir = v["dir"].as_str().unwrap_or_default();
        assert_eq!(
            std::fs::canonicalize(dir).unwrap(),
            std::fs::canonicalize(&snap).unwrap(),
            "{env:?}"
        );
    }
    // ~/.cache/huggingface/hub.
    let home2 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home2.path().join(".cache/huggingface")).unwrap();
    std::os::unix::fs::symlink(cache.path(), home2.path().join(".cache/huggingface/hub")).unwrap();
    let env = [
        ("HOME", home2.path().to_str().unwrap()),
        ("XDG_CACHE_HOME", ""),
    ];
    succeeds(&run_with(&["inspect", "openai/gpt-oss-20b"], &env, None));
    // The default model without --model.
    let o = run_with(
        &["generate", "--prompt-ids", "1,2", "-n", "1", "-t", "0"],
        &[("HF_HUB_CACHE", c)],
        None,
    );
    succeeds(&o);
    // A repo that is not there says how to get it.
    fails(
        &run_with(
            &["inspect", "openai/gpt-oss-120b"],
            &[("HF_HUB_CACHE", c)],
            None,
        ),
        2,
        &["openai/gpt-oss-120b", "oss-wgpu pull"],
    );
}

#[cfg(unix)]
#[test]
fn pull_offline_checks_the_cache() {
    let (cache, snap) = hub_cache();
    let c = cache.path().to_str().unwrap();
    let env = [("HF_HUB_CACHE", c), ("HF_HUB_OFFLINE", "1")];
    let (out, err) = succeeds(&run_with(&["pull", "openai/gpt-oss-20b"], &env, None));
    assert_eq!(out.trim(), snap.display().to_string());
    assert!(err.contains("2 weight files verified"), "{err}");
    succeeds(&run_with(
        &["pull", "--offline", "openai/gpt-oss-20b"],
        &[("HF_HUB_CACHE", c)],
        None,
    ));
    fails(
        &run_with(&["pull", "openai/gpt-oss-120b"], &env, None),
        2,
        &["openai/gpt-oss-120b", "HF_HUB_OFFLINE"],
    );
    fails(
        &run_with(&["pull", "not a repo"], &env, None),
        2,
        &["not a repo"],
    );

    // A damaged blob: the checksum names the file.
    let shard = snap.join("model-00001-of-00001.safetensors");
    let blob = std::fs::canonicalize(&shard).unwrap();
    let mut data = std::fs::read(&blob).unwrap();
    let n = data.len();
    data[n - 1] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    fails(
        &run_with(&["pull", "openai/gpt-oss-20b"], &env, None),
        1,
        &["model-00001-of-00001.safetensors", "checksum"],
    );
    // A shard missing.
    std::fs::remove_file(&shard).unwrap();
    fails(
        &run_with(&["pull", "openai/gpt-oss-20b"], &env, None),
        1,
        &["model-00001-of-00001.safetensors", "missing"],
    );
}

#[cfg(not(feature = "pull"))]
#[test]
fn pull_without_the_downloader_says_how_to_get_one() {
    let cache = tempfile::tempdir().unwrap();
    let o = run_with(
        &["pull", "openai/gpt-oss-20b"],
        &[("HF_HUB_CACHE", cache.path().to_str().unwrap())],
        None,
    );
    fails(&o, 2, &["--features pull", "--offline"]);
}

#[test]
fn bench_announces_its_phases_and_reports_load_time() {
    let o = run(&[
        "bench",
        "-m",
        &tiny(),
        "--pp",
        "8",
        "--pp-depths",
        "0,5",
        "--depths",
        "0",
        "--tg",
        "2",
        "--reps",
        "1",
        "--json",
    ]);
    let (out, err) = succeeds(&o);
    for phase in [
        "bench: loading weights",
        "bench: bandwidth",
        "bench: prefill of 8 tokens at depth 0",
        "bench: pp8 @ depth 0: ",
        "bench: context of 5 tokens",
        "bench: pp8 @ depth 5: ",
        "bench: decode of 2",
        "bench: tg2 @ depth 0: ",
    ] {
        assert!(err.contains(phase), "no {phase:?} in:\n{err}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let depths: Vec<_> = v[0]["prefill"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["depth"].as_u64())
        .collect();
    assert_eq!(depths, [Some(0), Some(5)], "{out}");
    assert!(v[0]["load_s"].as_f64().is_some_and(|s| s > 0.0), "{out}");
    assert!(v[0]["setup_s"].as_f64().is_some_and(|s| s > 0.0), "{out}");
}

#[test]
fn pipeline_cache_survives_damage() {
    let cache = tempfile::tempdir().unwrap();
    let env = [("OSS_WGPU_CACHE_DIR", cache.path().to_str().unwrap())];
    let args = [
        "generate",
        "-m",
        &tiny(),
        "--prompt-ids",
        "1,2",
        "-n",
        "2",
        "-t",
        "0",
        "--output",
        "ids",
    ];
    let first = ids(&succeeds(&run_with(&args, &env, None)).0);
    let files: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if files.is_empty() {
        println!("no pipeline cache on this backend (Vulkan only): nothing to damage");
        return;
    }
    for f in &files {
        std::fs::write(f, b"OSSWPC01 not a pipeline cache").unwrap();
    }
    // Same ids from a damaged cache, and the file rewritten whole.
    assert_eq!(ids(&succeeds(&run_with(&args, &env, None)).0), first);
    for f in &files {
        let b = std::fs::read(f).unwrap();
        assert!(
            b.starts_with(b"OSSWPC01") && b.len() >= 24,
            "{}",
            f.display()
        );
    }
    assert_eq!(ids(&succeeds(&run_with(&args, &env, None)).0), first);
}

#[test]
fn write_synthetic_makes_a_valid_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("tiny");
    let d = d.to_str().unwrap();
    succeeds(&run(&[
        "write-synthetic",
        "tiny",
        d,
        "--shard-size",
        "4MiB",
    ]));
    let (out, _) = succeeds(&run(&["inspect", d, "--check-values", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], true);
    assert!(v["files"].as_array().is_some_and(|f| f.len() > 1), "{out}");
    fails(&run(&["write-synthetic", "7b", d]), 2, &["7b"]);
}

/// A terminal on stdin gets a hint, not a silent wait (`script` gives the command a pty).
#[cfg(unix)]
#[test]
fn a_terminal_on_stdin_gets_a_hint() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("no `script` (util-linux) to make a terminal: skipped");
        return;
    }
    let cmd = format!("{} generate -m {} --raw -n 1", bin(), tiny());
    let o = Command::new("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("no prompt given") && shown.contains("pipe it on stdin"),
        "{shown}"
    );
}
