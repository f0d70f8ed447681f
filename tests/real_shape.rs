//! gpt-oss-20b's exact widths (hidden 2880, 64 query and 8 KV heads of 64, YaRN, window 128,
//! swiglu_limit 7) with few layers and seeded random weights, written to disk by the project's
//! checkpoint writer (three Hugging Face MXFP4 shards) and loaded as a user's checkpoint is.
//!
//! Prompts cross position 64, the window (128) and prefill step boundaries, and a decode run
//! crosses the window. On a GPU the widths are all real (32 experts of 2,880, the 201,088-token
//! vocabulary, 4 layers, window 128); on a CPU adapter (lavapipe in CI) the layers, experts,
//! expert width, vocabulary, window and prompts shrink to keep the suite fast, while the hidden
//! size and the attention heads stay gpt-oss-20b's. OSS_WGPU_REAL_SHAPE=full or =small forces
//! either size.
//!
//! Two properties, two tests:
//! - With an f32 KV cache (the default path, and the portable one) the GPU computes what the
//!   CPU reference computes in f64, to f32 rounding, at every position, and greedy decoding
//!   picks the reference's argmax.
//! - With an f16 KV cache the GPU computes what the reference computes with K and V rounded
//!   to f16. That function is continuous only where routing is: with top-4 of 32 experts, a
//!   rounding-sized change of a token's hidden state can flip a near-tied router choice and
//!   change that token, and every later one that attends to it, by whole units. (Measured on
//!   the H200: the f16 paths jumped by 11 logits after position 128 against both references,
//!   and the default and f16-only paths, which differ only in summation order, jumped apart
//!   by 11 at positions 1920..1983 of a 2,100-token prompt.) So the f16 test routes every
//!   token to all of 4 experts, where the block is a continuous function of its input, and
//!   bounds the GPU by the rounding's measured effect. Where the adapter has cooperative
//!   matrices, their path with an f16 cache is held to the same, with the coop bound in place
//!   of the f32 one.

mod common;

use std::time::Instant;

use common::{env_options, gpu_with};
use oss_wgpu::checkpoint::Checkpoint;
use oss_wgpu::config::ModelConfig;
use oss_wgpu::gpu::{Gpu, GpuOptions, KvChoice};
use oss_wgpu::model::forward::{Forward, SamplingParams, DEFAULT_CHUNK};
use oss_wgpu::model::synthetic;
use oss_wgpu::model::Model;
use oss_wgpu::reference::forward::forward_with;
use oss_wgpu::testing::writer::{WeightScales, WeightSet, WriteLayout};

/// f32 against f64 of the same function. Sums run over at most 2,880 terms (relative error
/// at most ~2,880 x 2^-24 = 1.7e-4 of the terms' magnitude, typically sqrt(2,880) x 2^-24),
/// repeated per layer and renormalised by each RMSNorm: 1e-4 of the largest logit at that
/// position, plus 1e-4 absolute, leaves an order of magnitude of room for that.
const F32_RTOL: f32 = 1e-4;
const F32_ATOL: f32 = 1e-4;

/// The f16 path against the reference with K and V rounded to nearest f16. The GPU rounds its
/// own f32 K and V, which can lie on the other side of a rounding boundary from the
/// reference's (and WGSL lets pack2x16float pick either neighbour): each element can move by
/// one f16 ulp, at most twice its rounding error. On a continuous function, linearised, that is
/// at most 2 D, where D is the effect of rounding every element (the largest |reference with
/// f16 K/V - reference in f32| of the case). Measured on the H200: at most 0.23 D.
const F16_FACTOR: f32 = 2.0;

/// The cooperative-matrix path (`--coop`: f16 operands, f32 accumulation on the matrix units)
/// against f64. What differs from f32 arithmetic is the accumulation, measured on the H200
/// with `cargo bench --bench kernels -- coop-accumulation` (BENCHMARKS.md, change 13): each
/// 16-deep multiply-add aligns its 16 products and the accumulator to the largest of them
/// with one guard bit, drops the bits below, and truncates the sum toward zero. The
/// truncation is biased: about half an ulp (one unit roundoff u) per step in the direction of
/// the running sum, K/16 u over a sum of K terms, plus the products' random guard-bit losses,
/// about sqrt(K)/2 u; F32_RTOL assumes sqrt(K) u. The activations' split into two f16 adds
/// at most 2^-20 of each term, small beside both. So the same room as F32_RTOL over the
/// typical error: F32_RTOL (sqrt(K)/16 + 1/2), with K = 2,880 (the widest sum) 3.85e-4.
const COOP_RTOL: f32 = F32_RTOL * (53.665 / 16.0 + 0.5);

struct Size {
    /// The sliding window: gpt-oss-20b's 128 on a GPU; 32 on a CPU adapter, so that prompts
    /// short enough for lavapipe still cross it.
    window: usize,
    layers: usize,
    experts: usize,
    experts_per_token: usize,
    intermediate: usize,
    vocab: usize,
}

impl Size {
    /// gpt-oss-20b's widths, 4 layers (a GPU's size).
    const FULL: Size = Size {
        window: 128,
        layers: 4,
        experts: 32,
        experts_per_token: 4,
        intermediate: 2880,
        vocab: 201088,
    };
}

fn config(s: &Size) -> ModelConfig {
    let mut c = synthetic::preset("20b").unwrap();
    c.sliding_window = s.window;
    c.num_hidden_layers = s.layers;
    c.layer_types.truncate(s.layers);
    c.num_experts = s.experts;
    c.experts_per_token = s.experts_per_token;
    c.intermediate_size = s.intermediate;
    c.vocab_size = s.vocab;
    c
}

fn full_size() -> bool {
    match std::env::var("OSS_WGPU_REAL_SHAPE").as_deref() {
        Ok("full") => true,
        Ok("small") => false,
        _ => gpu_with(env_options()).info.device_type != wgpu::DeviceType::Cpu,
    }
}

/// One run: the first `prompt` tokens of the shared random prompt, prefilled in steps of
/// `chunk` tokens, then `decode` greedy tokens.
struct Case {
    name: &'static str,
    prompt: usize,
    chunk: usize,
    decode: usize,
}

/// A: one prefill step past 64 and the window, then decode. B: A's first tokens in steps of
/// half the window (every step boundary, the sliding ring wrapping), against A's rows. C: A's
/// first tokens and a decode run across the window. D (full size, f32 test only): 2,100 tokens
/// in two prefill steps, the paths against each other (the CPU reference would take minutes).
fn cases(full: bool, long: bool) -> Vec<Case> {
    let mut v = if full {
        vec![
            Case {
                name: "A: 300 tokens in one prefill step",
                prompt: 300,
                chunk: DEFAULT_CHUNK,
                decode: 8,
            },
            Case {
                name: "B: A's first 150 tokens in steps of 64",
                prompt: 150,
                chunk: 64,
                decode: 2,
            },
            Case {
                name: "C: A's first 100 tokens, 40 decoded across the window",
                prompt: 100,
                chunk: DEFAULT_CHUNK,
                decode: 40,
            },
        ]
    } else {
        vec![
            Case {
                name: "A: 80 tokens in one prefill step",
                prompt: 80,
                chunk: DEFAULT_CHUNK,
                decode: 4,
            },
            Case {
                name: "B: A's first 72 tokens in steps of 16",
                prompt: 72,
                chunk: 16,
                decode: 2,
            },
            Case {
                name: "C: A's first 24 tokens, 16 decoded across the window",
                prompt: 24,
                chunk: DEFAULT_CHUNK,
                decode: 16,
            },
        ]
    };
    if full && long {
        v.push(Case {
            name: "D: 2,100 tokens, two prefill steps",
            prompt: 2100,
            chunk: DEFAULT_CHUNK,
            decode: 4,
        });
    }
    v
}

/// What one path produced for one case: logits at every prompt position, then at every
/// decode step (row i of `decode_logits` predicts the token after prompt + ids[..i]).
struct Output {
    prompt_logits: Vec<f32>,
    decode_logits: Vec<f32>,
    ids: Vec<u32>,
}

impl Output {
    /// Prompt rows, then every decode row after the first (which repeats the prompt's last).
    fn all_rows(&self, vocab: usize) -> Vec<f32> {
        let mut v = self.prompt_logits.clone();
        v.extend_from_slice(&self.decode_logits[vocab..]);
        v
    }
}

fn run(gpu: &Gpu, model: &Model, case: &Case, prompt: &[u32]) -> Output {
    let w = &model.weights;
    let ctx = case.prompt + case.decode + 1;
    let mut fwd = Forward::new(gpu, w, &model.config, ctx, case.chunk, case.decode).unwrap();
    fwd.set_sampling(gpu, w, SamplingParams::default()).unwrap();
    let prompt_logits = fwd.prefill(gpu, w, prompt, 0, true).unwrap().unwrap();
    let mut decode_logits = Vec::new();
    let mut ids = Vec::new();
    for i in 0..case.decode {
        let id = fwd.request_sample(gpu, i).unwrap().wait(gpu).unwrap();
        decode_logits.extend(fwd.logits(gpu).unwrap());
        ids.push(id);
        if i + 1 < case.decode {
            fwd.decode_step(gpu, prompt.len() + i, i + 1).unwrap();
        }
    }
    Output {
        prompt_logits,
        decode_logits,
        ids,
    }
}

/// A checkpoint of `size` on disk, its random prompt, and every case run on every path.
struct Runs {
    _dir: tempfile::TempDir,
    ckpt: Checkpoint,
    vocab: usize,
    prompt: Vec<u32>,
    cases: Vec<Case>,
    /// (path name, outputs per case)
    paths: Vec<(&'static str, Vec<Output>)>,
}

fn run_all(size: &Size, cases: Vec<Case>, paths: &[(&'static str, GpuOptions)]) -> Runs {
    let start = Instant::now();
    let c = config(size);
    let vocab = c.vocab_size;
    let dir = tempfile::tempdir().unwrap();
    WeightSet::random_with(&c, 20_880, WeightScales::REAL)
        .write(dir.path(), WriteLayout::HfMxfp4 { shards: 3 })
        .unwrap();
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    eprintln!(
        "checkpoint: {} layers, {} experts (top {}), intermediate {}, vocab {}; written in {:.1?}",
        c.num_hidden_layers,
        c.num_experts,
        c.experts_per_token,
        c.intermediate_size,
        vocab,
        start.elapsed()
    );
    let longest = cases.iter().map(|c| c.prompt).max().unwrap();
    let mut rng = common::Rng::new(64_128);
    let prompt: Vec<u32> = (0..longest).map(|_| rng.below(vocab as u32)).collect();
    let mut out = Vec::new();
    for (name, opts) in paths {
        let t = Instant::now();
        let gpu = gpu_with(opts.clone());
        assert_eq!(gpu.precision().kv, opts.kv, "{name}: KV type");
        if opts.portable {
            assert!(!gpu.precision().subgroups, "{name}: subgroups in use");
        }
        let model = Model::load(&gpu, dir.path(), false).unwrap();
        let outputs = cases
            .iter()
            .map(|case| run(&gpu, &model, case, &prompt[..case.prompt]))
            .collect();
        eprintln!(
            "{name} on {} (KV {:?}, subgroups {}): {:.1?}",
            gpu.adapter_name(),
            gpu.precision().kv,
            gpu.precision().subgroups,
            t.elapsed()
        );
        out.push((*name, outputs));
    }
    Runs {
        _dir: dir,
        ckpt,
        vocab,
        prompt,
        cases,
        paths: out,
    }
}

impl Runs {
    /// Cases A and C (0 and 2) through `check(checks, case index, case, prompt)`, which returns
    /// the per-row bounds it used; after A, case B's prompt rows against A's (the same prompt
    /// prefix, another chunking) under A's bounds, on every path.
    fn check_cases(
        &self,
        checks: &mut Checks,
        mut check: impl FnMut(&mut Checks, usize, &Case, &[u32]) -> Vec<f32>,
    ) {
        let v = self.vocab;
        for ci in [0, 2] {
            let case = &self.cases[ci];
            eprintln!("{}:", case.name);
            let tol = check(checks, ci, case, &self.prompt[..case.prompt]);
            if ci == 0 {
                let b = &self.cases[1];
                eprintln!("{}:", b.name);
                for (name, outs) in &self.paths {
                    checks.rows(
                        &format!("{name}: B vs A"),
                        &outs[1].prompt_logits,
                        &outs[0].prompt_logits[..b.prompt * v],
                        v,
                        &tol[..b.prompt],
                    );
                }
            }
        }
    }
}

fn options(portable: bool, kv: KvChoice) -> GpuOptions {
    GpuOptions {
        portable,
        kv,
        ..env_options()
    }
}

/// The reference (CPU, f64) on `prompt` followed by `ids` but the last: the logits that
/// predicted each prompt token and each generated id (teacher forcing on the GPU's ids, so
/// every GPU row has a reference row).
fn reference(ckpt: &Checkpoint, prompt: &[u32], ids: &[u32], f16_kv: bool) -> Vec<f32> {
    let t = Instant::now();
    let mut seq = prompt.to_vec();
    seq.extend_from_slice(&ids[..ids.len() - 1]);
    let r = forward_with(ckpt, &seq, f16_kv).unwrap();
    eprintln!(
        "  reference on {} positions (f16 K/V {f16_kv}): {:.1?}",
        seq.len(),
        t.elapsed()
    );
    r
}

/// Per position (row of `vocab`): the largest |a - b|.
fn row_diffs(a: &[f32], b: &[f32], vocab: usize) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    a.chunks(vocab)
        .zip(b.chunks(vocab))
        .enumerate()
        .map(|(r, (x, y))| {
            x.iter().zip(y).fold(0f32, |m, (&p, &q)| {
                assert!(p.is_finite(), "row {r}: non-finite logit {p}");
                assert!(q.is_finite(), "row {r}: non-finite reference logit {q}");
                m.max((p - q).abs())
            })
        })
        .collect()
}

/// The f32 bound of each row: F32_ATOL + F32_RTOL x its largest |logit|.
fn f32_bounds(logits: &[f32], vocab: usize) -> Vec<f32> {
    logits
        .chunks(vocab)
        .map(|r| F32_ATOL + F32_RTOL * r.iter().fold(0f32, |m, v| m.max(v.abs())))
        .collect()
}

/// The cooperative-matrix path's bound of each row: F32_ATOL + COOP_RTOL x its largest
/// |logit|.
fn coop_bounds(logits: &[f32], vocab: usize) -> Vec<f32> {
    logits
        .chunks(vocab)
        .map(|r| F32_ATOL + COOP_RTOL * r.iter().fold(0f32, |m, v| m.max(v.abs())))
        .collect()
}

/// The largest row difference in each band of 64 positions, for the report.
fn bands(d: &[f32]) -> String {
    d.chunks(64)
        .enumerate()
        .map(|(i, c)| {
            let m = c.iter().fold(0f32, |a, &b| a.max(b));
            format!("{}..{}: {m:.1e}", i * 64, i * 64 + c.len() - 1)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Every comparison of a test, printed as it runs; failures are collected so that one run
/// shows every path and case (a GPU run is expensive), then fail the test at the end.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Row r of `got` within `tol[r]` of `want`.
    fn rows(&mut self, what: &str, got: &[f32], want: &[f32], vocab: usize, tol: &[f32]) {
        let d = row_diffs(got, want, vocab);
        eprintln!("  {what}: {}", bands(&d));
        let bad: Vec<usize> = (0..d.len()).filter(|&r| d[r] > tol[r]).collect();
        if let Some(&r) = bad.first() {
            self.failures.push(format!(
                "{what}: {} positions outside the bound, the first {r}: max |logit difference| {:.3e} > {:.3e}",
                bad.len(),
                d[r],
                tol[r]
            ));
        }
    }

    fn same_ids(&mut self, what: &str, got: &[u32], want: &[u32]) {
        if got != want {
            eprintln!("  {what}: {got:?} != {want:?}");
            self.failures.push(format!("{what}: {got:?} != {want:?}"));
        }
    }

    /// Every row of `path`'s `out` (prompt, then decode) within `tol` of `want`, computed by
    /// `reference`, and its greedy ids the argmax of the rows that predicted them.
    #[allow(clippy::too_many_arguments)]
    fn against(
        &mut self,
        path: &str,
        reference: &str,
        out: &Output,
        want: &[f32],
        prompt: usize,
        v: usize,
        tol: &[f32],
    ) {
        let what = format!("{path} vs {reference} (prompt, then decode)");
        self.rows(&what, &out.all_rows(v), want, v, tol);
        self.greedy(&format!("{path}: greedy ids"), out, want, prompt, v);
    }

    /// The greedy ids of `out` are the argmax of the reference rows that predicted them.
    fn greedy(&mut self, what: &str, out: &Output, reference: &[f32], prompt: usize, v: usize) {
        let want: Vec<u32> = (0..out.ids.len())
            .map(|i| {
                let row = prompt - 1 + i;
                argmax(&reference[row * v..(row + 1) * v])
            })
            .collect();
        self.same_ids(what, &out.ids, &want);
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} failed checks:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

#[test]
fn f32_kv_paths_match_the_reference_at_real_widths() {
    let full = full_size();
    let size = if full {
        Size::FULL
    } else {
        Size {
            window: 32,
            layers: 2,
            experts: 8,
            experts_per_token: 4,
            intermediate: 704,
            vocab: 2048,
        }
    };
    let paths = [
        ("default", options(false, KvChoice::F32)),
        ("portable", options(true, KvChoice::F32)),
    ];
    let runs = run_all(&size, cases(full, true), &paths);
    let v = runs.vocab;
    let mut checks = Checks::default();
    let portable = &runs.paths[1].1;
    runs.check_cases(&mut checks, |checks, ci, case, prompt| {
        let want = reference(&runs.ckpt, prompt, &portable[ci].ids, false);
        let tol = f32_bounds(&want, v);
        for (name, outs) in &runs.paths {
            checks.against(name, "reference", &outs[ci], &want, case.prompt, v, &tol);
        }
        tol
    });
    if let Some(d) = runs.cases.get(3) {
        eprintln!("{}:", d.name);
        let (base, other) = (&portable[3], &runs.paths[0].1[3]);
        // Two f32 computations of the same function: twice the bound against f64.
        let tol: Vec<f32> = f32_bounds(&base.prompt_logits, v)
            .iter()
            .map(|t| 2.0 * t)
            .collect();
        checks.rows(
            "default vs portable",
            &other.prompt_logits,
            &base.prompt_logits,
            v,
            &tol,
        );
        checks.same_ids("default vs portable: greedy ids", &other.ids, &base.ids);
    }
    checks.finish();
}

#[test]
fn f16_kv_stays_within_its_rounding_at_real_widths() {
    let full = full_size();
    // Every token on all 4 experts: routing weights are a softmax over 4 logits, continuous.
    let size = Size {
        window: if full { 128 } else { 32 },
        layers: if full { 4 } else { 2 },
        experts: 4,
        experts_per_token: 4,
        intermediate: if full { 2880 } else { 704 },
        vocab: if full { 201088 } else { 2048 },
    };
    // Where the adapter has cooperative matrices, their path with an f16 cache too (prefill
    // attention then runs in attention_prefill_f16), bounded by the coop bound where the f16
    // path has the f32 one. Routing over all 4 experts keeps it clear of expert flips.
    let mut paths = vec![("f16 KV", options(false, KvChoice::F16))];
    let coop = GpuOptions {
        coop: true,
        ..options(false, KvChoice::F16)
    };
    if full && gpu_with(coop.clone()).precision().coop {
        paths.push(("coop, f16 KV", coop));
    }
    let runs = run_all(&size, cases(full, false), &paths);
    let v = runs.vocab;
    let mut checks = Checks::default();
    runs.check_cases(&mut checks, |checks, ci, case, prompt| {
        // The returned bound (case B against A, every path) is the loosest path's.
        let mut bound: Vec<f32> = Vec::new();
        let mut refs: Vec<(Vec<u32>, Vec<f32>, Vec<f32>)> = Vec::new();
        for (name, outs) in &runs.paths {
            let ids = &outs[ci].ids;
            if !refs.iter().any(|(i, _, _)| i == ids) {
                let r32 = reference(&runs.ckpt, prompt, ids, false);
                let r16 = reference(&runs.ckpt, prompt, ids, true);
                refs.push((ids.clone(), r32, r16));
            }
            let (_, r32, r16) = refs.iter().find(|(i, _, _)| i == ids).unwrap();
            let rounding = row_diffs(r16, r32, v);
            eprintln!("  effect of f16 K/V on the reference: {}", bands(&rounding));
            let d = rounding.iter().fold(0f32, |m, &x| m.max(x));
            let base = if name.starts_with("coop") {
                coop_bounds(r32, v)
            } else {
                f32_bounds(r32, v)
            };
            let tol: Vec<f32> = base.iter().map(|t| t + F16_FACTOR * d).collect();
            checks.against(
                name,
                "reference with f16 K/V",
                &outs[ci],
                r16,
                case.prompt,
                v,
                &tol,
            );
            if bound.is_empty() {
                bound = tol;
            } else {
                bound.iter_mut().zip(&tol).for_each(|(b, &t)| *b = b.max(t));
            }
        }
        bound
    });
    checks.finish();
}

/// The cooperative-matrix path (where the adapter has it; a skip elsewhere, lavapipe
/// included) against the reference within COOP_RTOL, greedy ids equal, and against the
/// default f32 path on the 2,100-token case within the sum of the two bounds.
///
/// Ignored: on the H200 (1ff2e33 + this test) every check passes (largest differences 2.1e-3
/// against the reference, 2.2e-3 against the default path, bounds 3.7e-3 and 4.7e-3), except
/// one position of the 2,100-token case, 2082, where the two paths differ by 0.80: a jump, not
/// a drift (the positions after it are back within the bound), as a near-tied expert choice
/// flipping in the last layer would make. Until the path keeps routing choices stable under
/// its rounding, or the test bounds what a flip may do, the path stays opt-in (`--coop`).
/// Run with `--ignored`.
#[test]
#[ignore = "the cooperative-matrix path flips one routing choice in 2,100 tokens on the H200 (see the doc comment)"]
fn cooperative_matrix_path_matches_the_reference_within_its_bound() {
    let coop = GpuOptions {
        coop: true,
        ..options(false, KvChoice::F32)
    };
    if !gpu_with(coop.clone()).precision().coop {
        eprintln!("no adapter with cooperative matrices: nothing to check");
        return;
    }
    let size = Size::FULL;
    let paths = [("coop", coop), ("default", options(false, KvChoice::F32))];
    let runs = run_all(&size, cases(true, true), &paths);
    let v = runs.vocab;
    let mut checks = Checks::default();
    let (coop_outs, default_outs) = (&runs.paths[0].1, &runs.paths[1].1);
    runs.check_cases(&mut checks, |checks, ci, case, prompt| {
        let want = reference(&runs.ckpt, prompt, &coop_outs[ci].ids, false);
        let tol = coop_bounds(&want, v);
        checks.against(
            "coop",
            "reference",
            &coop_outs[ci],
            &want,
            case.prompt,
            v,
            &tol,
        );
        tol
    });
    if let Some(d) = runs.cases.get(3) {
        eprintln!("{}:", d.name);
        let (base, other) = (&default_outs[3], &coop_outs[3]);
        let tol: Vec<f32> = f32_bounds(&base.prompt_logits, v)
            .iter()
            .zip(coop_bounds(&base.prompt_logits, v))
            .map(|(a, b)| a + b)
            .collect();
        checks.rows(
            "coop vs default",
            &other.prompt_logits,
            &base.prompt_logits,
            v,
            &tol,
        );
        checks.same_ids("coop vs default: greedy ids", &other.ids, &base.ids);
    }
    checks.finish();
}
