//! The engine: one thread that owns the GPU, the model and the KV cache, and runs one sequence
//! at a time from a bounded queue of jobs. A job is token ids in, token ids out (streamed as
//! events): text, templates and parsing stay with the caller, so a batched engine serving
//! several sequences per step can replace this loop behind the same `submit`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::checkpoint::{Checkpoint, WeightSource};
use crate::config::ModelConfig;
use crate::gpu::{Gpu, GpuOptions};
use crate::model::{GenerateOptions, Generator, Model, SamplingParams};
use crate::tokenizer::Tokenizer;

pub const DEFAULT_CTX: usize = 8192;

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub model_dir: PathBuf,
    pub gpu: GpuOptions,
    /// Context length; default 8192, at most the model's maximum.
    pub ctx: Option<usize>,
    /// The most tokens one request may generate (sizes the sample history on the GPU).
    pub max_tokens: usize,
    /// Jobs that may wait behind the running one; more are refused.
    pub queue: usize,
    /// Test double: instead of running the model, job n replies with script n % len (harmony
    /// text, control tokens spelled out), one id per `SCRIPT_STEP`. For testing the API layer
    /// with a real client where a random-weight model cannot produce a tool call.
    pub scripted: Vec<String>,
}

/// Time per scripted token: slow enough for a client to disconnect mid-stream.
pub const SCRIPT_STEP: Duration = Duration::from_millis(30);

/// A generation request: everything in ids.
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Ends generation after one of these ids.
    pub stop_ids: Vec<u32>,
    pub events: UnboundedSender<EngineEvent>,
    /// Set by the caller to stop early (a stop sequence matched, the client went away).
    pub cancel: Arc<AtomicBool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EngineEvent {
    /// The job left the queue; `reused` prompt tokens came from the cache.
    Started {
        reused: usize,
    },
    Token(u32),
    Done(Finished),
    /// The engine failed on this job (a GPU error); the cache is dropped.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub generated: usize,
    /// From leaving the queue to the first sampled id.
    pub time_to_first_token: Duration,
    pub decode_tok_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({0} requests waiting); try again later")]
    QueueFull(usize),
    #[error("the engine has stopped")]
    Stopped,
}

/// The handle the server (or chat) holds; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::SyncSender<Job>,
    queue: usize,
    waiting: Arc<AtomicUsize>,
    pub tokenizer: Tokenizer,
    pub config: ModelConfig,
    /// What `/v1/models` calls the model: the checkpoint folder's name.
    pub model_name: String,
    pub ctx: usize,
    pub max_tokens: usize,
}

impl Engine {
    /// Opens the checkpoint and tokenizer here (errors before anything listens), then loads
    /// the model on the engine thread and waits until it is ready.
    pub fn start(opts: EngineOptions) -> crate::Result<Engine> {
        let ckpt = Checkpoint::open(&opts.model_dir)?;
        let config = ckpt.config().clone();
        let tokenizer_path = ckpt
            .tokenizer_path()
            .ok_or_else(|| crate::Error::Checkpoint {
                path: opts.model_dir.clone(),
                message: "no tokenizer.json here or in the parent folder".into(),
            })?;
        let tokenizer = Tokenizer::from_file(tokenizer_path)?;
        let scripted = !opts.scripted.is_empty();
        let ctx = match opts.ctx {
            Some(c) => c,
            // The test double has no positions to run out of: room for long scripted prompts.
            None if scripted => DEFAULT_CTX,
            None => DEFAULT_CTX.min(config.max_position_embeddings),
        };
        // The test double has no positions to run out of.
        if !scripted {
            crate::model::fit::check_ctx(&config, ctx)?;
        }
        let (jobs, rx) = mpsc::sync_channel::<Job>(opts.queue);
        let waiting = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<crate::Result<()>>();
        let thread_opts = opts.clone();
        let thread_waiting = waiting.clone();
        let scripts = (opts.scripted.iter())
            .map(|s| tokenizer.encode(s))
            .collect::<crate::Result<Vec<_>>>()?;
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                if scripts.is_empty() {
                    run(thread_opts, ctx, ckpt, rx, thread_waiting, ready_tx)
                } else {
                    let _ = ready_tx.send(Ok(()));
                    run_scripted(&scripts, rx, thread_waiting)
                }
            })
            .map_err(|e| crate::Error::io("engine thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(crate::Error::DeviceLost("engine thread exited".into())),
        }
        Ok(Engine {
            jobs,
            queue: opts.queue,
            waiting,
            tokenizer,
            config,
            model_name: model_name(&opts.model_dir),
            ctx,
            max_tokens: opts.max_tokens,
        })
    }

    /// Queues `job`, or refuses it when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match e {
                    mpsc::TrySendError::Full(_) => Err(SubmitError::QueueFull(self.queue)),
                    mpsc::TrySendError::Disconnected(_) => Err(SubmitError::Stopped),
                }
            }
        }
    }

    /// Jobs submitted and not yet started.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// A job's events and its cancel switch, from the caller's side.
pub struct JobHandle {
    pub events: UnboundedReceiver<EngineEvent>,
    pub cancel: Arc<AtomicBool>,
}

impl Job {
    pub fn new(
        prompt: Vec<u32>,
        max_tokens: usize,
        sampling: SamplingParams,
        stop_ids: Vec<u32>,
    ) -> (Job, JobHandle) {
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            prompt,
            max_tokens,
            sampling,
            stop_ids,
            events,
            cancel: cancel.clone(),
        };
        (job, JobHandle { events: rx, cancel })
    }
}

impl Drop for JobHandle {
    /// A caller that stops listening (a client gone) stops its generation.
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

fn model_name(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A hub snapshot's folder is a commit hash: use the repository's name instead.
    let repo = dir.ancestors().find_map(|a| {
        a.file_name()?
            .to_str()?
            .strip_prefix("models--")
            .map(str::to_owned)
    });
    match repo {
        Some(r) => r.replace("--", "/"),
        None if name.is_empty() => "gpt-oss".into(),
        None => name,
    }
}

fn run(
    opts: EngineOptions,
    ctx: usize,
    ckpt: Checkpoint,
    jobs: mpsc::Receiver<Job>,
    waiting: Arc<AtomicUsize>,
    ready: mpsc::Sender<crate::Result<()>>,
) {
    let setup = || -> crate::Result<(Gpu, Model)> {
        let gpu = Gpu::new(&opts.gpu)?;
        let model = Model::upload(&gpu, &ckpt, &opts.model_dir, false)?;
        Ok((gpu, model))
    };
    let (gpu, model) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    drop(ckpt);
    let mut generator = match Generator::new(&gpu, &model, ctx, opts.max_tokens.max(1)) {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    log::info!(
        "engine ready on {}: ctx {}, prefill steps of {}",
        gpu.adapter_name(),
        ctx,
        generator.chunk()
    );
    let _ = ready.send(Ok(()));
    for job in jobs {
        waiting.fetch_sub(1, Ordering::SeqCst);
        // A client that left while queued costs nothing.
        if job.cancel.load(Ordering::SeqCst) || job.events.is_closed() {
            continue;
        }
        let gen_opts = GenerateOptions {
            max_tokens: job.max_tokens,
            sampling: job.sampling,
            stop_ids: job.stop_ids.clone(),
            prompt_logits: false,
        };
        let started = std::time::Instant::now();
        let mut first = None;
        let reuse = generator.reusable_prefix(&job.prompt);
        let _ = job.events.send(EngineEvent::Started { reused: reuse });
        let result = generator.generate_from(&job.prompt, reuse, &gen_opts, |id| {
            if first.is_none() {
                first = Some(started.elapsed());
            }
            let listening = job.events.send(EngineEvent::Token(id)).is_ok();
            Ok(listening && !job.cancel.load(Ordering::SeqCst))
        });
        let event = match result {
            Ok(stats) => EngineEvent::Done(Finished {
                prompt_tokens: stats.prompt_tokens,
                reused_tokens: stats.reused_tokens,
                generated: stats.generated,
                time_to_first_token: first.unwrap_or_else(|| started.elapsed()),
                decode_tok_s: stats.decode_tok_s(),
            }),
            Err(e) => {
                log::error!("generation failed: {e}");
                EngineEvent::Failed(e.to_string())
            }
        };
        let _ = job.events.send(event);
    }
}

/// The test double's loop: the same events, stops, limits and cancellation as `run`.
fn run_scripted(scripts: &[Vec<u32>], jobs: mpsc::Receiver<Job>, waiting: Arc<AtomicUsize>) {
    for (n, job) in jobs.into_iter().enumerate() {
        waiting.fetch_sub(1, Ordering::SeqCst);
        if job.cancel.load(Ordering::SeqCst) || job.events.is_closed() {
            continue;
        }
        let started = std::time::Instant::now();
        let _ = job.events.send(EngineEvent::Started { reused: 0 });
        let script = &scripts[n % scripts.len()];
        let mut generated = 0;
        for &id in script.iter().take(job.max_tokens) {
            std::thread::sleep(SCRIPT_STEP);
            generated += 1;
            let listening = job.events.send(EngineEvent::Token(id)).is_ok();
            if !listening || job.cancel.load(Ordering::SeqCst) || job.stop_ids.contains(&id) {
                break;
            }
        }
        let _ = job.events.send(EngineEvent::Done(Finished {
            prompt_tokens: job.prompt.len(),
            reused_tokens: 0,
            generated,
            time_to_first_token: SCRIPT_STEP,
            decode_tok_s: 0.0,
        }));
        log::info!(
            "scripted job {n}: {generated} ids in {:?}",
            started.elapsed()
        );
    }
}
