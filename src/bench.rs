//! `oss-wgpu bench`: prefill and decode throughput, the adapter's measured bandwidth, and how
//! close decode comes to the bandwidth roofline (bytes read per token / bandwidth), with a
//! per-kernel breakdown from GPU timestamps where the adapter has them.

use std::time::Instant;

use serde::Serialize;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Profiler};
use crate::inspect::decode_bytes;
use crate::kernels::{bandwidth_read, fill_random};
use crate::model::forward::{Forward, DEFAULT_CHUNK};
use crate::model::memory::MemoryPlan;
use crate::model::{GenerateOptions, Generator, Model, SamplingParams};

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Prompt lengths to time prefill at.
    pub prefill: Vec<usize>,
    /// Context depths to time each prefill at: the prompt follows this many cached tokens
    /// (0: an empty cache).
    pub prefill_depths: Vec<usize>,
    /// Context depths to time decode at.
    pub depths: Vec<usize>,
    /// Tokens generated per decode measurement.
    pub tg: usize,
    /// Timed repetitions (after one warm-up).
    pub reps: usize,
    /// Also time every kernel of one decode step at each depth and of one prefill step
    /// (each dispatch in its own pass; a context of its own is prefilled for each depth).
    pub profile: bool,
}

impl BenchOptions {
    /// Checks the sizes against the model before anything is allocated and returns the
    /// context the runs need. Errors name bench's own flags.
    pub fn validate(&self, c: &ModelConfig) -> Result<usize> {
        let max = c.max_position_embeddings;
        if self.prefill.contains(&0) {
            return Err(Error::argument("--pp", "prompt lengths must be at least 1"));
        }
        if self.tg == 0 {
            return Err(Error::argument("--tg", "must be at least 1"));
        }
        if self.reps == 0 {
            return Err(Error::argument("--reps", "must be at least 1"));
        }
        // Prefill runs sample one token after the prompt; decode runs sample tg + 1 after
        // their depth; one position is kept spare for the step in flight.
        let need = |n: usize, extra: usize| n.max(1).checked_add(extra)?.checked_add(2);
        for &n in &self.prefill {
            for &d in &self.prefill_depths {
                match need(n, 1).and_then(|c| c.checked_add(d)) {
                    Some(ctx) if ctx <= max => {}
                    _ => {
                        return Err(Error::argument(
                            if d == 0 { "--pp" } else { "--pp-depths" },
                            format!(
                                "a prompt of {n} after {d} cached tokens is more than the model's {max} positions allow"
                            ),
                        ))
                    }
                }
            }
        }
        for &d in &self.depths {
            match need(d, self.tg.saturating_add(1)) {
                Some(ctx) if ctx <= max => {}
                _ => {
                    return Err(Error::argument(
                        if self.tg >= max { "--tg" } else { "--depths" },
                        format!(
                            "depth {d} plus --tg {} is more than the model's {max} positions allow",
                            self.tg
                        ),
                    ))
                }
            }
        }
        let deepest_prompt = self.prefill_depths.iter().max().copied().unwrap_or(0);
        let longest = self
            .prefill
            .iter()
            .map(|&n| n + 3 + deepest_prompt)
            .chain(self.depths.iter().map(|&d| d.max(1) + self.tg + 3))
            .max()
            .unwrap_or(self.tg + 3);
        Ok(longest.min(max))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Stat {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let n = v.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PrefillResult {
    pub tokens: usize,
    /// Cached tokens before the prompt.
    pub depth: usize,
    /// Tokens per second (median, min and max over repetitions).
    pub tok_s: Stat,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecodeResult {
    pub depth: usize,
    pub tokens: usize,
    pub tok_s: Stat,
    pub ms_per_token: f64,
    /// Bytes read per token times tokens per second (median).
    pub effective_gb_s: f64,
    /// effective_gb_s over the measured bandwidth.
    pub roofline_fraction: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub dispatches: usize,
    /// Summed GPU time per decode token, microseconds.
    pub us: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub model: String,
    pub f16_kv: bool,
    pub subgroups: bool,
    /// Measured with bandwidth_read over `bandwidth_bytes`.
    pub bandwidth_gb_s: f64,
    pub bandwidth_bytes: u64,
    pub bytes_per_token: u64,
    pub prefill: Vec<PrefillResult>,
    pub decode: Vec<DecodeResult>,
    /// Per-kernel GPU time of one decode step at each depth (timestamps), by depth.
    pub decode_kernels: Vec<(usize, Vec<KernelTime>)>,
    /// Per-kernel GPU time of one prefill step of the first prefill length (timestamps).
    pub prefill_kernels: Vec<(usize, Vec<KernelTime>)>,
    pub decode_dispatches: usize,
    /// What the generator of the main context was planned to take.
    pub memory: MemoryPlan,
    pub peak_gpu_bytes: u64,
    /// Seconds to read and upload the weights (or generate synthetic ones), set by the caller.
    pub load_s: f64,
    /// Seconds to create the KV cache, activations and every pipeline.
    pub setup_s: f64,
}

/// Reads a large buffer with 16-byte loads and returns (GB/s, bytes read per pass).
pub fn measure_bandwidth(gpu: &Gpu, reps: usize) -> Result<(f64, u64)> {
    let bytes = (1u64 << 30).min(gpu.max_binding() / 16 * 16);
    let data = gpu.storage("bandwidth.data", bytes)?;
    let sink = gpu.storage("bandwidth.sink", 1024)?;
    let words = (bytes / 4) as u32;
    let fill = fill_random::FillRandom {
        out: &data,
        n_words: words,
        mode: fill_random::Mode::Bytes,
        seed: 7,
    }
    .dispatch(gpu)?;
    gpu.run("bandwidth fill", &[&fill])?;
    // Enough workgroups to fill any GPU; each streams its share with a grid stride.
    let read = bandwidth_read::BandwidthRead {
        data: &data,
        sink: &sink,
        workgroups: 8192,
    }
    .dispatch(gpu)?;
    let profiler = Profiler::new(gpu, 1);
    let mut secs = Vec::new();
    for i in 0..reps + 1 {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bandwidth"),
                timestamp_writes: profiler.as_ref().map(|p| p.pass(0)),
            });
            read.record(&mut pass);
        }
        if let Some(p) = &profiler {
            p.resolve(&mut encoder, 1);
        }
        let start = Instant::now();
        gpu.queue.submit([encoder.finish()]);
        let t = match &profiler {
            Some(p) => p.read(gpu, 1)?[0] * 1e-9,
            None => {
                gpu.wait("bandwidth")?;
                start.elapsed().as_secs_f64()
            }
        };
        if i > 0 {
            secs.push(t);
        }
    }
    let s = Stat::of(secs);
    Ok((bytes as f64 / s.median / 1e9, bytes))
}

fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = crate::testing::writer::Rng::new(seed);
    (0..n).map(|_| rng.below(vocab as u64) as u32).collect()
}

/// Sums per-dispatch times by kernel, in first-seen order.
fn by_kernel(times: Vec<(String, f64)>) -> Vec<KernelTime> {
    let mut kernels: Vec<KernelTime> = Vec::new();
    for (name, ns) in times {
        match kernels.iter_mut().find(|k| k.kernel == name) {
            Some(k) => {
                k.dispatches += 1;
                k.us += ns / 1e3;
            }
            None => kernels.push(KernelTime {
                kernel: name,
                dispatches: 1,
                us: ns / 1e3,
            }),
        }
    }
    kernels
}

/// Runs every measurement; `phase` is told what starts next (for progress on stderr).
pub fn run(
    gpu: &Gpu,
    model: &Model,
    name: &str,
    o: &BenchOptions,
    phase: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    let c = &model.config;
    let ctx = o.validate(c)?;
    phase("bandwidth");
    let (bandwidth, bw_bytes) = measure_bandwidth(gpu, o.reps.max(3))?;
    let bytes_per_token = decode_bytes(c).total;
    phase(&format!("KV cache and pipelines for a context of {ctx}"));
    let setup = Instant::now();
    let mut generator = Generator::new(gpu, model, ctx, o.tg + 1)?;
    let memory = MemoryPlan::on(gpu, c, ctx)?;
    gpu.save_pipeline_cache();
    let setup_s = setup.elapsed().as_secs_f64();
    let greedy = GenerateOptions {
        max_tokens: 1,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
        prompt_logits: false,
    };

    let mut prefill = Vec::new();
    for &depth in &o.prefill_depths {
        // The cached context first (its own prefill, untimed), then each timed prompt is
        // prefilled on top of it: positions depth.. are overwritten by every repetition.
        let context = random_ids(depth, c.vocab_size, 2000 + depth as u64);
        if depth > 0 {
            phase(&format!("context of {depth} tokens for prefill at depth"));
            let fill = GenerateOptions {
                max_tokens: 0,
                ..greedy.clone()
            };
            generator.generate(&context, &fill, |_| Ok(true))?;
        }
        for &n in &o.prefill {
            phase(&format!(
                "prefill of {n} tokens at depth {depth} x {}",
                o.reps + 1
            ));
            let ids = [context.as_slice(), &random_ids(n, c.vocab_size, n as u64)].concat();
            let mut rates = Vec::new();
            for rep in 0..o.reps + 1 {
                let stats = generator.generate_from(&ids, depth, &greedy, |_| Ok(true))?;
                if rep > 0 {
                    rates.push(stats.prefill_tok_s());
                }
            }
            let tok_s = Stat::of(rates);
            phase(&format!("pp{n} @ depth {depth}: {:.1} tok/s", tok_s.median));
            prefill.push(PrefillResult {
                tokens: n,
                depth,
                tok_s,
            });
        }
    }

    let mut decode = Vec::new();
    let gen = GenerateOptions {
        max_tokens: o.tg + 1,
        ..greedy.clone()
    };
    for &depth in &o.depths {
        phase(&format!(
            "decode of {} tokens at depth {depth} x {}",
            o.tg,
            o.reps + 1
        ));
        let ids = random_ids(depth.max(1), c.vocab_size, 1000 + depth as u64);
        let mut rates = Vec::new();
        for rep in 0..o.reps + 1 {
            // After the first run the cache holds the context (decoding wrote only past it):
            // later runs prefill its last token alone.
            let reuse = if rep == 0 { 0 } else { ids.len() - 1 };
            let stats = generator.generate_from(&ids, reuse, &gen, |_| Ok(true))?;
            if rep > 0 {
                rates.push(stats.decode_tok_s());
            }
        }
        let tok_s = Stat::of(rates);
        phase(&format!(
            "tg{} @ depth {depth}: {:.1} tok/s",
            o.tg, tok_s.median
        ));
        let eff = tok_s.median * bytes_per_token as f64 / 1e9;
        decode.push(DecodeResult {
            depth,
            tokens: o.tg,
            ms_per_token: 1e3 / tok_s.median.max(1e-9),
            effective_gb_s: eff,
            roofline_fraction: eff / bandwidth,
            tok_s,
        });
    }
    drop(generator);

    // Per-kernel profile of one decode step at each depth, and of one prefill step.
    let mut decode_kernels = Vec::new();
    let mut dispatches = 0;
    for &depth in o.depths.iter().filter(|_| o.profile) {
        phase(&format!("per-kernel profile of decode at depth {depth}"));
        let depth = depth.max(1);
        let ctx = (depth + 2).min(c.max_position_embeddings);
        let mut fwd = Forward::new(gpu, &model.weights, c, ctx, DEFAULT_CHUNK, 2)?;
        fwd.prefill(
            gpu,
            &model.weights,
            &random_ids(depth, c.vocab_size, 5),
            0,
            false,
        )?;
        gpu.wait("profile prefill")?;
        dispatches = fwd.decode_dispatches();
        // Warm up once, then keep the second run.
        fwd.profile_decode_step(gpu, depth)?;
        if let Some(times) = fwd.profile_decode_step(gpu, depth)? {
            decode_kernels.push((depth, by_kernel(times)));
        }
    }
    let mut prefill_kernels = Vec::new();
    if let Some(&n) = o.prefill.first().filter(|_| o.profile) {
        phase(&format!("per-kernel profile of a prefill step of {n}"));
        let mut fwd = Forward::new(gpu, &model.weights, c, n.max(1), DEFAULT_CHUNK, 2)?;
        let ids = random_ids(n.max(1), c.vocab_size, 9);
        fwd.profile_prefill_step(gpu, &model.weights, &ids)?;
        if let Some(times) = fwd.profile_prefill_step(gpu, &model.weights, &ids)? {
            prefill_kernels.push((ids.len().min(fwd.chunk), by_kernel(times)));
        }
    }

    let precision = gpu.precision();
    Ok(BenchReport {
        adapter: gpu.info.name.clone(),
        backend: gpu.info.backend.to_str().to_string(),
        driver: format!("{} {}", gpu.info.driver, gpu.info.driver_info),
        model: name.to_string(),
        f16_kv: precision.kv == crate::gpu::KvChoice::F16,
        subgroups: precision.subgroups,
        bandwidth_gb_s: bandwidth,
        bandwidth_bytes: bw_bytes,
        bytes_per_token,
        prefill,
        decode,
        decode_kernels,
        prefill_kernels,
        decode_dispatches: dispatches,
        memory,
        peak_gpu_bytes: gpu.allocated_bytes(),
        load_s: 0.0,
        setup_s,
    })
}
