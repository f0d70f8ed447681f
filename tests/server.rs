//! `oss-wgpu serve` on 127.0.0.1 (a free port) driven by the official `openai` Python package
//! (tests/server_client.py), and `oss-wgpu chat` driven through a pseudo-terminal with pexpect
//! (tests/chat_repl.py). .ci/run installs the Python packages; a machine without them fails
//! here, it does not skip.
//!
//! The real tiny-a model checks the engine path (greedy output equals `generate --prompt-ids`
//! on the rendered ids, KV reuse reported, streaming, errors). A random-weight model cannot be
//! made to emit a tool call or an analysis message, so the tool round trip, reasoning and a cut
//! mid-analysis run against `--scripted-reply`, the engine's test double: same HTTP, rendering,
//! parsing, queue and cancellation code, scripted ids instead of the GPU.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary under test (the staged one when the tests run on a machine without Rust).
fn bin() -> String {
    common::oss_wgpu_bin().to_string_lossy().into_owned()
}

const TOOL_SCRIPT: &str = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant\
    <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>";
const FINAL_SCRIPT: &str = "<|channel|>analysis<|message|>It is sunny.<|end|><|start|>assistant\
    <|channel|>final<|message|>Sunny in Paris.<|return|>";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn model() -> String {
    common::repo_path("tests/fixtures/tiny-a")
        .to_string_lossy()
        .into_owned()
}

fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--model",
            &model(),
            "--port",
            "0",
            "--date",
            "2025-01-01",
        ])
        .args(extra)
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("oss-wgpu serve starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its address");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
        .to_owned();
    Server { child, base }
}

fn python(script: &str, args: &[&str]) {
    let path = common::repo_path(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test ({e}); .ci/run installs what it needs")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} {args:?} failed (needs `pip install openai pexpect`, as .ci/run does):\n{text}"
    );
}

#[test]
fn openai_client_against_the_real_tiny_model() {
    let s = serve(&["--max-tokens", "64"]);
    python(
        "tests/server_client.py",
        &["real", &s.base, &bin(), &model()],
    );
}

#[test]
fn openai_client_tool_round_trip_reasoning_and_cuts() {
    let s = serve(&[
        "--scripted-reply",
        TOOL_SCRIPT,
        "--scripted-reply",
        FINAL_SCRIPT,
    ]);
    python("tests/server_client.py", &["scripted", &s.base]);
}

#[test]
fn disconnect_cancels_and_requests_queue() {
    let long = format!(
        "<|channel|>final<|message|>{}<|return|>",
        "once upon a time ".repeat(50)
    );
    let s = serve(&["--scripted-reply", &long, "--queue", "1"]);
    python("tests/server_client.py", &["slow", &s.base]);
}

#[test]
fn api_key_and_body_limit() {
    let s = serve(&[
        "--api-key",
        "sekrit",
        "--max-body",
        "1MiB",
        "--scripted-reply",
        FINAL_SCRIPT,
    ]);
    python("tests/server_client.py", &["auth", &s.base, "sekrit"]);
}

#[test]
fn chat_repl_through_a_pseudo_terminal() {
    python("tests/chat_repl.py", &[&bin(), &model()]);
}
