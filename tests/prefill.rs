//! Prefill kernels (batched over tokens) against the CPU references: the tiled matmul, tiled
//! attention over the cache, and the grouped MoE path with its named edge cases (uneven loads,
//! experts with no tokens, a single token, every token on one expert, experts split over
//! buffers). Both paths; outputs poisoned first.

mod common;

use common::kernels::*;
use oss_wgpu::kernels::moe::TILE_M;
use oss_wgpu::reference as r;

/// f32 sums against f64 references (see tests/kernels.rs).
const F32_RTOL: f32 = 1e-4;
const F32_ATOL: f32 = 1e-5;
/// Attention's absolute bound: outputs are weighted means of values of up to 2.
const ATTENTION_ATOL: f32 = 2e-5;

/// The reference matvec of every token row of `x` [_, k] (with its row of `resid`, if any).
fn per_token_matvec(
    w: &[u8],
    x: &[f32],
    k: usize,
    bias: &[f32],
    resid: Option<&[f32]>,
) -> Vec<f32> {
    let rows = bias.len();
    (0..x.len() / k)
        .flat_map(|tok| {
            let res = resid.map(|r| &r[tok * rows..(tok + 1) * rows]);
            r::matvec_f32_bf16w(w, &x[tok * k..(tok + 1) * k], None, Some(bias), res)
        })
        .collect()
}

#[test]
fn matmul_matches_per_token_matvec() {
    let mut rng = Rng::new(11);
    // 70 tokens and 100 rows: partial tiles both ways; K = 96.
    let (t, rows, k) = (70usize, 100usize, 96usize);
    let w = bf16_matrix(&mut rng, rows, k, 0.5);
    let x = rng.vec_sym(t * k, 2.0);
    let bias = rng.vec_sym(rows, 1.0);
    let resid = rng.vec_sym(t * rows, 3.0);
    let want = per_token_matvec(&w, &x, k, &bias, Some(&resid));
    for gpu in paths() {
        let xb = up(&gpu, "x", &x);
        let bb = up(&gpu, "bias", &bias);
        let o = up(&gpu, "resid", &resid);
        // Two row parts writing their columns of one output.
        run_row_parts(&gpu, "matmul", &w, k, &[(0, 64), (64, 36)], |w| {
            matmul_f32_bf16w::Matmul {
                w,
                n_tokens: t as u32,
                x: &xb,
                bias: Some(&bb),
                residual: true,
                out: &o,
                out_stride: rows as u32,
            }
            .dispatch(&gpu)
        });
        assert_close(
            "matmul",
            &gpu.read_f32(&o).unwrap(),
            &want,
            F32_ATOL,
            F32_RTOL,
        );
    }
}
/// The prefill router's logits (f32, a workgroup per few tokens) against the per-token
/// reference: token counts that leave a workgroup partly filled, expert counts that leave a
/// group's rows partly filled (and more rows than one pass of the groups takes), K not a
/// multiple of a group's lanes nor of a staged piece, K over several pieces.
#[test]
fn router_prefill_matches_per_token_matvec() {
    let mut rng = Rng::new(12);
    for (t, e, k) in [
        (13usize, 7usize, 200usize),
        (1, 32, 96),
        (40, 130, 64),
        (9, 20, 1040),
    ] {
        let w = bf16_matrix(&mut rng, e, k, 0.5);
        let x = rng.vec_sym(t * k, 2.0);
        let bias = rng.vec_sym(e, 1.0);
        let want = per_token_matvec(&w, &x, k, &bias, None);
        for gpu in paths() {
            let xb = up(&gpu, "xn", &x);
            let bb = up(&gpu, "bias", &bias);
            let o = out(&gpu, "logits", t * e);
            run_row_parts(&gpu, "router", &w, k, &[(0, e)], |w| {
                router_prefill_f32_bf16w::RouterPrefill {
                    w,
                    n_tokens: t as u32,
                    xn: &xb,
                    bias: &bb,
                    logits: &o,
                }
                .dispatch(&gpu)
            });
            let what = format!("router {t} tokens x {e} experts, K {k}");
            assert_close(&what, &gpu.read_f32(&o).unwrap(), &want, F32_ATOL, F32_RTOL);
        }
    }
}

/// The cooperative-matrix matmul (f16 operands) against an f64 product, where the device
/// has cooperative matrices: partial tiles both ways, two row parts, bias and residual, and
/// rows and tokens far outside f16's range (weights up to 2^40, activations up to 2^30; both
/// must be shifted) next to ordinary ones.
#[test]
fn f16_matmul_matches_f64_within_its_bound() {
    let mut rng = Rng::new(12);
    let (t, rows, k) = (70usize, 100usize, 192usize);
    let mut wf = rng.vec_sym(rows * k, 0.5);
    for c in 0..k {
        wf[7 * k + c] *= 2f32.powi(40);
        wf[8 * k + c] *= 2f32.powi(-40);
    }
    let w = oss_wgpu::reference::f32_to_bf16(&wf);
    let wv = oss_wgpu::reference::bf16_to_f32(&w);
    let mut x = rng.vec_sym(t * k, 2.0);
    for c in 0..k {
        x[3 * k + c] *= 2f32.powi(30);
    }
    let bias = rng.vec_sym(rows, 1.0);
    let resid = rng.vec_sym(t * rows, 3.0);
    // The f64 product and, per output, the bound of moe_error_bounds' kind: each x held as
    // two f16 after its token's shift, each weight after its row's (exact unless subnormal).
    let mut want = vec![0f32; t * rows];
    let mut tol = vec![0f32; t * rows];
    for tok in 0..t {
        let xr = &x[tok * k..(tok + 1) * k];
        let xs = 2f64.powi(x_shift(xr) as i32);
        for r in 0..rows {
            let wr = &wv[r * k..(r + 1) * k];
            let wmax = wr.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            // The kernel's row shift puts the row's largest |w| in [2^14, 2^15).
            let ws = 2f64.powi(wmax.log2().floor() as i32 - 14);
            let (mut sum, mut mag, mut err) = (0f64, 0f64, 0f64);
            for (&a, &b) in wr.iter().zip(xr) {
                let (a, b) = (a as f64, b as f64);
                sum += a * b;
                mag += (a * b).abs();
                err += a.abs() * (F16_REL * b.abs() + F16_TINY * xs)
                    + (b.abs() + F16_REL * b.abs()) * F16_TINY * ws;
            }
            let o = tok * rows + r;
            want[o] = (sum + bias[r] as f64 + resid[o] as f64) as f32;
            let m = mag + bias[r].abs() as f64 + resid[o].abs() as f64;
            tol[o] = (err + F32_RTOL as f64 * m) as f32 + F32_ATOL;
        }
    }
    let Some(gpu) = common::coop_gpu() else {
        eprintln!("no adapter with cooperative matrices: nothing to check");
        return;
    };
    {
        let xb = up(&gpu, "x", &x);
        let shift = out(&gpu, "shift", t);
        let x16 = out(&gpu, "x16", t * k);
        let s = row_shift_f32::RowShift {
            n_tokens: t as u32,
            hidden: k as u32,
            x: &xb,
            shift: &shift,
            x16: &x16,
        };
        gpu.run("shift", &[&s.dispatch(&gpu).unwrap()]).unwrap();
        let bb = up(&gpu, "bias", &bias);
        let o = up(&gpu, "resid", &resid);
        run_row_parts(&gpu, "matmul f16", &w, k, &[(0, 64), (64, 36)], |w| {
            let w_shift = gpu.storage("w_shift", w.rows as u64 * 4)?;
            let s = weight_shift_bf16w::WeightShift {
                w,
                w_shift: &w_shift,
            };
            gpu.run("w shift", &[&s.dispatch(&gpu)?])?;
            matmul_f16_bf16w::MatmulF16 {
                w,
                w_shift: &w_shift,
                n_tokens: t as u32,
                x16: &x16,
                shift: &shift,
                bias: Some(&bb),
                residual: true,
                out: &o,
                out_stride: rows as u32,
            }
            .dispatch(&gpu)
        });
        let got = gpu.read_f32(&o).unwrap();
        let mut worst = 0f32;
        for (n, ((&g, &w), &b)) in got.iter().zip(&want).zip(&tol).enumerate() {
            let d = (g - w).abs();
            assert!(
                d <= b,
                "matmul f16: index {n}: got {g}, want {w} (|diff| {d} > bound {b})"
            );
            worst = worst.max(d / b);
        }
        eprintln!("matmul f16: largest |diff| / bound {worst:.2}");
    }
}

struct PrefillAttn {
    heads: Heads,
    /// Tokens per prefill step (the ring must hold window + step tokens).
    step_tokens: usize,
    total: usize,
}

impl PrefillAttn {
    /// `h` query heads and `kvh` KV heads of `d`, `window` (0: full), then the rest in order.
    const fn new(
        h: usize,
        kvh: usize,
        d: usize,
        window: usize,
        step_tokens: usize,
        total: usize,
    ) -> Self {
        PrefillAttn {
            heads: Heads::new(h, kvh, d, window),
            step_tokens,
            total,
        }
    }
}

/// The reference attends over the keys and values the cache holds after each step, read
/// back (an f16 cache's values widened exactly), so that only the kernel's own rounding
/// counts: the f32 kernel's bound on every path.
fn check_prefill_attention(gpu: &Gpu, c: &PrefillAttn, seed: u64) {
    check_prefill_attention_over(gpu, c, seed, 1.0)
}

/// `q_gain` multiplies the queries of every 7th token: up to 100 their logits reach tens, so
/// the running max moves by whole units from block to block and the rescale of the partial
/// output matters (the rows are checked like the others); beyond, a range test, those rows
/// only checked for being finite, since logits that large are ill-conditioned in any
/// precision.
fn check_prefill_attention_over(gpu: &Gpu, c: &PrefillAttn, seed: u64, q_gain: f32) {
    let mut rng = Rng::new(seed);
    let heads = c.heads;
    let (h, d, kvh) = (heads.n_heads, heads.head_dim, heads.n_kv_heads);
    let n = c.total;
    // Already-rotated q and k: this test is about attention (RoPE is tested in kernels.rs), so
    // the rope table is the identity (cos 1, sin 0).
    let mut qkv = rng.vec_sym(n * heads.stride(), 2.0);
    let large = |t: usize| q_gain != 1.0 && t % 7 == 0;
    for (t, row) in qkv.chunks_exact_mut(heads.stride()).enumerate() {
        if large(t) {
            row[..h * d].iter_mut().for_each(|x| *x *= q_gain);
        }
    }
    let sinks = rng.vec_sym(h, 2.0);
    let table: Vec<[f32; 2]> = vec![[1.0, 0.0]; n * d / 2];
    let capacity = if heads.window > 0 {
        heads.window + c.step_tokens
    } else {
        n
    };

    let (q_all, mut k_all, mut v_all) = heads.split(&qkv);
    let positions: Vec<usize> = (0..n).collect();

    let bufs = AttnBuffers::new(gpu, heads, capacity, c.step_tokens, &table);
    let sinks_buf = up(gpu, "sinks", &sinks);
    let o = out(gpu, "attn", c.step_tokens * h * d);
    let attention = bufs.attention();
    let rope = rope_kv_append_f32::RopeKvAppend {
        attention,
        max_tokens: c.step_tokens as u32,
        rope: &bufs.rope,
    };
    let attn = attention_prefill_f32::AttentionPrefill {
        attention,
        max_tokens: c.step_tokens as u32,
        sinks: &sinks_buf,
        out: &o,
    };
    let mut got = Vec::new();
    let mut t0 = 0;
    while t0 < n {
        let tn = c.step_tokens.min(n - t0);
        bufs.load(gpu, &qkv, t0, tn);
        let mut rd = rope.dispatch(gpu).unwrap();
        rd.workgroups = rope.workgroups(gpu, tn as u32);
        let mut ad = attn.dispatch(gpu).unwrap();
        ad.workgroups = attn.grid(gpu, tn as u32);
        gpu.poison(&o);
        gpu.run("prefill attention", &[&rd, &ad]).unwrap();
        let part = gpu.read_range(&o, 0, (tn * h * d * 4) as u64).unwrap();
        got.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&part));
        let k = cached(gpu, &bufs.k_cache, kvh, capacity, d);
        let v = cached(gpu, &bufs.v_cache, kvh, capacity, d);
        for t in t0..t0 + tn {
            for g in 0..kvh {
                let (at, from) = ((t * kvh + g) * d, (g * capacity + t % capacity) * d);
                k_all[at..at + d].copy_from_slice(&k[from..from + d]);
                v_all[at..at + d].copy_from_slice(&v[from..from + d]);
            }
        }
        t0 += tn;
    }
    let want = r::attention_f32(heads.shape(), &q_all, &positions, &k_all, &v_all, &sinks);
    let (atol, rtol) = (ATTENTION_ATOL, F32_RTOL);
    let what = format!(
        "prefill attention window={} steps of {} over {n}",
        heads.window, c.step_tokens
    );
    let row = h * d;
    for (t, (g, w)) in got.chunks(row).zip(want.chunks(row)).enumerate() {
        if large(t) && q_gain > 100.0 {
            assert!(
                g.iter().all(|x| x.is_finite()),
                "{what}: token {t} (queries x {q_gain}): output not finite"
            );
        } else {
            assert_close(&format!("{what}: token {t}"), g, w, atol, rtol);
        }
    }
}

/// A KV cache buffer [kv_heads, capacity, d] as f32 (f16 elements widened exactly).
fn cached(gpu: &Gpu, cache: &GpuBuffer, kvh: usize, capacity: usize, d: usize) -> Vec<f32> {
    let n = kvh * capacity * d;
    let f16 = gpu.precision().kv == KvChoice::F16;
    let bytes = gpu
        .read_range(cache, 0, (n * if f16 { 2 } else { 4 }) as u64)
        .unwrap();
    if f16 {
        bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    } else {
        bytemuck::pod_collect_to_vec(&bytes)
    }
}

#[test]
fn prefill_attention_causal_window_and_chunked_steps() {
    // (heads, KV heads, head_dim, window, tokens per step, tokens)
    let cases = [
        // One token.
        PrefillAttn::new(4, 2, 16, 0, 1, 1),
        // Full causal over several key blocks in one step; gpt-oss head shapes.
        PrefillAttn::new(16, 2, 64, 0, 80, 80),
        // Sliding window shorter than the prompt, in one step and in steps with ring wrap.
        PrefillAttn::new(4, 1, 16, 8, 40, 40),
        PrefillAttn::new(4, 2, 16, 8, 5, 37),
        // Full attention across steps (the cache holds earlier steps' keys).
        PrefillAttn::new(8, 2, 32, 0, 17, 50),
        // gpt-oss-20b's attention shapes (64 query heads, 8 KV heads of 64), one step across
        // position 64 and the window of 128, full and sliding.
        PrefillAttn::new(64, 8, 64, 0, 200, 200),
        PrefillAttn::new(64, 8, 64, 128, 200, 200),
    ];
    for_each_case(&cases, 300, check_prefill_attention);
    // Logits of tens on every 7th token.
    for_each_case(
        &[PrefillAttn::new(8, 2, 64, 0, 150, 150)],
        310,
        |gpu, c, seed| check_prefill_attention_over(gpu, c, seed, 16.0),
    );
}

/// attention_prefill_f16 (where the device has cooperative matrices; a skip elsewhere)
/// against the f64 reference over the keys and values its f16 cache holds, within the f32
/// kernel's bound (check_prefill_attention): keys and values are exact f16 operands, and the queries and P are split
/// into two f16 parts each (f16_split: 2^-20 of each term). The last case's large queries
/// exceed f16's range unless the kernel shifts them; the ones before move the running max.
#[test]
fn coop_prefill_attention_matches_the_reference_over_its_cache() {
    let Some(gpu) = common::coop_f16_gpu() else {
        eprintln!("no adapter with cooperative matrices: nothing to check");
        return;
    };
    // (heads, KV heads, head_dim, window, tokens per step, tokens)
    let cases = [
        PrefillAttn::new(4, 2, 64, 0, 1, 1),
        PrefillAttn::new(16, 2, 64, 0, 80, 80),
        // gpt-oss-20b's shapes, full and sliding, across the window.
        PrefillAttn::new(64, 8, 64, 0, 200, 200),
        PrefillAttn::new(64, 8, 64, 128, 200, 200),
        // Steps that are not multiples of the query tile, the ring wrapping.
        PrefillAttn::new(8, 2, 64, 128, 70, 300),
        PrefillAttn::new(8, 1, 64, 0, 150, 420),
    ];
    for (i, c) in cases.iter().enumerate() {
        let layout = c.heads.layout(c.total);
        assert!(
            attention_prefill_f16::applies(&gpu, &layout),
            "attention_prefill_f16 should run on this device"
        );
        check_prefill_attention_over(&gpu, c, 400 + i as u64, 1.0);
    }
    // Logits of tens on every 7th token: the running max moves, the output is rescaled.
    let c = PrefillAttn::new(64, 8, 64, 0, 300, 300);
    check_prefill_attention_over(&gpu, &c, 410, 16.0);
    let c = PrefillAttn::new(64, 8, 64, 128, 200, 200);
    check_prefill_attention_over(&gpu, &c, 411, 16.0);
    let c = PrefillAttn::new(8, 2, 64, 0, 100, 100);
    check_prefill_attention_over(&gpu, &c, 412, 1e6);
}

/// Which kernels run the expert matmuls: the f32 tiles, or cooperative matrices (f16
/// operands) where the device has them; down stays f32 when the clamp leaves its input
/// unbounded, as in the prefill plan.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ExpertPath {
    F32,
    Coop,
}

fn check_moe_prefill(gpu: &Gpu, c: &MoeCase, seed: u64) {
    check_moe_prefill_on(gpu, c, seed, ExpertPath::F32);
}

/// The expert matmuls of one MoE prefill step on `path`, for every part of the experts.
fn expert_dispatches(
    gpu: &Gpu,
    c: &MoeCase,
    moe: MoeBuffers,
    part: &ExpertPartBuffers,
    routing: &Routing,
    (x16, shift): (&GpuBuffer, &GpuBuffer),
    path: ExpertPath,
) -> Vec<Dispatch> {
    let (max_tokens, limit) = (c.tokens as u32, c.limit);
    let (gate_up, down) = (&part.gate_up(), &part.down());
    let mut ds = Vec::new();
    if path == ExpertPath::Coop {
        ds.push(
            moe_gate_up_prefill_f16_mf4w::MoeGateUpPrefillF16 {
                moe,
                experts: gate_up,
                limit,
                max_tokens,
                routing,
                x16,
                shift,
                row_exps: part.gate_up_row_exps(),
            }
            .dispatch(gpu)
            .unwrap(),
        );
    } else {
        ds.push(
            moe_gate_up_prefill_f32_mf4w::MoeGateUpPrefill {
                moe,
                experts: gate_up,
                limit,
                max_tokens,
                routing,
            }
            .dispatch(gpu)
            .unwrap(),
        );
    }
    if path == ExpertPath::Coop && moe_down_prefill_f16_mf4w::fits(limit) {
        ds.push(
            moe_down_prefill_f16_mf4w::MoeDownPrefillF16 {
                moe,
                experts: down,
                limit,
                max_tokens,
                routing,
                row_exps: part.down_row_exps(),
            }
            .dispatch(gpu)
            .unwrap(),
        );
    } else {
        ds.push(
            moe_down_prefill_f32_mf4w::MoeDownPrefill {
                moe,
                experts: down,
                max_tokens,
                routing,
            }
            .dispatch(gpu)
            .unwrap(),
        );
    }
    ds
}

fn check_moe_prefill_on(gpu: &Gpu, c: &MoeCase, seed: u64, path: ExpertPath) {
    let (t, h, i, e, k) = (c.tokens, c.hidden, c.inter, c.experts, c.k);
    let inputs = c.draw(seed);
    let (x, gain, logits) = (&inputs.x, &inputs.gain, &inputs.logits);
    let experts = inputs.weights.as_ref();
    let mut want = Vec::new();
    for tok in 0..t {
        want.extend(r::moe_f32_mf4w(
            &x[tok * h..(tok + 1) * h],
            gain,
            1e-5,
            &logits[tok * e..(tok + 1) * e],
            k,
            c.limit,
            &experts,
        ));
    }

    let xb = up(gpu, "x", x);
    let gb = up(gpu, "gain", gain);
    let lb = up(gpu, "logits", logits);
    let xn = out(gpu, "xn", t * h);
    let act = out(gpu, "act", t * k * i);
    let y = out(gpu, "y", t * k * h);
    let shift = out(gpu, "shift", t);
    let x16 = out(gpu, "x16", t * h);
    let routing = Routing::new(gpu, t as u32, k as u32, e as u32).unwrap();
    let shape = c.shape();
    let norm = rmsnorm_f32::RmsNorm {
        x: &xb,
        gain: &gb,
        out: &xn,
        n_tokens: t as u32,
        hidden: h as u32,
        eps: 1e-5,
    };
    let route = moe_route_prefill::MoeRoutePrefill {
        shape,
        n_tokens: t as u32,
        logits: &lb,
        routing: &routing,
    };
    let mut ds = vec![norm.dispatch(gpu).unwrap()];
    ds.extend(route.dispatches(gpu).unwrap());
    if path == ExpertPath::Coop {
        let s = row_shift_f32::RowShift {
            n_tokens: t as u32,
            hidden: h as u32,
            x: &xn,
            shift: &shift,
            x16: &x16,
        };
        ds.push(s.dispatch(gpu).unwrap());
    }
    let parts = ExpertPartBuffers::upload_all(gpu, &experts, &c.parts);
    let moe = MoeBuffers {
        shape,
        xn: &xn,
        act: &act,
        out: &y,
    };
    for part in &parts {
        let shifted = (&x16, &shift);
        ds.extend(expert_dispatches(
            gpu, c, moe, part, &routing, shifted, path,
        ));
    }
    let combine = moe_combine_prefill_f32::MoeCombinePrefill {
        shape,
        n_tokens: t as u32,
        y: &y,
        routing: &routing,
        x: &xb,
    };
    ds.push(combine.dispatch(gpu).unwrap());
    gpu.run("moe prefill", &ds.iter().collect::<Vec<_>>())
        .unwrap();
    let what = format!(
        "moe prefill ({path:?}) T={t} E={e} k={k} parts={:?}",
        c.parts
    );
    // f32 rounding errors scale with the magnitudes of the terms summed, not with the result:
    // with scales up to 2^7 and no clamp, outputs near 1e4 are what is left of terms near 1e6.
    // The f16 operands add their own bound (see moe_error_bounds).
    let f16_down = path == ExpertPath::Coop && moe_down_prefill_f16_mf4w::fits(c.limit);
    let bounds: Vec<(f32, f32)> = (0..t)
        .flat_map(|tok| {
            let (x, logits) = (&x[tok * h..(tok + 1) * h], &logits[tok * e..(tok + 1) * e]);
            moe_error_bounds(x, gain, logits, k, c.limit, &experts, f16_down).x
        })
        .collect();
    let got = gpu.read_f32(&xb).unwrap();
    let mut worst = (0f32, 0usize);
    for (n, ((&g, &w), &(m, f16_err))) in got.iter().zip(&want).zip(&bounds).enumerate() {
        assert!(!g.is_nan(), "{what}: NaN at index {n} (want {w})");
        let f16_err = if path == ExpertPath::Coop {
            f16_err
        } else {
            0.0
        };
        let tol = F32_ATOL + F32_RTOL * m + f16_err;
        let d = (g - w).abs();
        assert!(
            d <= tol,
            "{what}: index {n}: got {g}, want {w} (|diff| {d} > tol {tol}; terms of magnitude {m})"
        );
        if d / tol > worst.0 {
            worst = (d / tol, n);
        }
    }
    eprintln!(
        "{what}: largest |diff| / tolerance {:.2} at index {}",
        worst.0, worst.1
    );
}

/// The power of two row_shift_f32 should pick for a row (the smallest s >= 0 with
/// max|x| 2^-s < 2^15, counted up one at a time), and the shifted row's two f16 parts, where
/// the device has cooperative matrices.
#[test]
fn x_shift_brings_rows_into_f16_range() {
    let mut rng = Rng::new(21);
    let h = 96;
    // Row maxima below, at and far above 2^15 (one row per scale), signs mixed.
    let scales = [1.0f32, 32767.0, 32768.0, 65535.0, 65536.0, 1.0e6, 3.0e30];
    let mut x = Vec::new();
    for &s in &scales {
        let mut row = rng.vec_sym(h, 1.0);
        row[rng.below(h as u32) as usize] = if rng.below(2) == 0 { s } else { -s };
        x.extend(row);
    }
    let want: Vec<u32> = x.chunks(h).map(x_shift).collect();
    // Built only where the device has cooperative matrices, the kernel's only readers.
    if let Some(gpu) = common::coop_gpu() {
        let xb = up(&gpu, "x", &x);
        let shift = out(&gpu, "shift", scales.len());
        let x16 = out(&gpu, "x16", x.len());
        let d = row_shift_f32::RowShift {
            n_tokens: scales.len() as u32,
            hidden: h as u32,
            x: &xb,
            shift: &shift,
            x16: &x16,
        };
        gpu.run("x shift", &[&d.dispatch(&gpu).unwrap()]).unwrap();
        let got = gpu.read_u32(&shift).unwrap();
        let name = gpu.adapter_name();
        assert_eq!(got, want, "{name}");
        // x16: per run of 4, four hi f16 then four lo f16 (lo scaled by 2^11); hi + lo / 2^11
        // is x 2^-shift to within 2^-20 of it, 2^-24 absolute below f16's normals.
        let parts: Vec<f64> = (gpu.read(&x16).unwrap().chunks_exact(2))
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect();
        for (i, &v) in x.iter().enumerate() {
            let (run, lane) = (i / 4, i % 4);
            let hi = parts[8 * run + lane];
            let lo = parts[8 * run + 4 + lane];
            let scaled = v as f64 / 2f64.powi(want[i / h] as i32);
            let split = hi + lo / 2048.0;
            let tol = scaled.abs() / 1_048_576.0 + 1.0 / 16_777_216.0;
            assert!(
                (split - scaled).abs() <= tol && hi.abs() < 65504.0,
                "{name}: x[{i}] = {v}: hi {hi} + lo {lo} / 2^11 = {split}, want {scaled}"
            );
        }
    }
}

/// weight_shift_bf16w puts each bf16 row's largest |w| in [2^14, 2^15) once divided by
/// 2^w_shift, for rows from 2^-80 to 2^90 (and at the clamp: an all-zero row, one beyond
/// 2^113 + 15), on every path; the matmul's f16 operands rely on it.
#[test]
fn weight_shift_brings_rows_into_f16_range() {
    let mut rng = Rng::new(23);
    let k = 136;
    let exps = [-80i32, -40, -14, -1, 0, 1, 14, 15, 16, 40, 90];
    let mut wf = Vec::new();
    for &e in &exps {
        let mut row = rng.vec_sym(k, 1.0);
        row[rng.below(k as u32) as usize] = if e % 2 == 0 { 1.5 } else { -1.75 };
        wf.extend(row.iter().map(|v| v * 2f32.powi(e)));
    }
    wf.extend(vec![0f32; k]);
    wf.extend(vec![3.0e38f32; k]);
    let rows = exps.len() + 2;
    let w = oss_wgpu::reference::f32_to_bf16(&wf);
    let wv = oss_wgpu::reference::bf16_to_f32(&w);
    for gpu in paths() {
        let wb = gpu.upload("w", &w).unwrap();
        let w_shift = out(&gpu, "w_shift", rows);
        let d = weight_shift_bf16w::WeightShift {
            w: Bf16Rows {
                buffer: &wb,
                rows: rows as u32,
                k: k as u32,
                row0: 0,
            },
            w_shift: &w_shift,
        };
        gpu.run("w shift", &[&d.dispatch(&gpu).unwrap()]).unwrap();
        let got = gpu.read_u32(&w_shift).unwrap();
        for (r, &s) in got.iter().enumerate() {
            let s = s as i32;
            let row = &wv[r * k..(r + 1) * k];
            let max = row.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
            let what = format!(
                "{}: row {r} (max |w| {max:e}), shift {s}",
                gpu.adapter_name()
            );
            if r < exps.len() {
                let scaled = max / 2f64.powi(s);
                assert!((16384.0..32768.0).contains(&scaled), "{what}: {scaled}");
            } else {
                // The clamp: 2^+-shift stays a normal f32.
                let want = if max == 0.0 { -100 } else { 113 };
                assert_eq!(s, want, "{what}");
            }
        }
    }
}

/// row_exp_mf4w gives each expert row its largest scale byte, on every path: rows of 3 blocks
/// (so rows start mid-word), 4k + 3 rows (a partial last word), bytes from 0 to 254 with one
/// row's largest at each position of the row.
#[test]
fn row_exp_is_each_rows_largest_scale() {
    let mut rng = Rng::new(29);
    let (rows, nb) = (4 * 17 + 3, 3);
    let mut bytes: Vec<u8> = (0..rows * nb).map(|_| (rng.below(255)) as u8).collect();
    bytes[0] = 254;
    bytes[nb + 2] = 254;
    bytes[2 * nb..3 * nb].fill(0);
    let want: Vec<u8> = bytes.chunks(nb).map(|r| *r.iter().max().unwrap()).collect();
    let mut padded = bytes.clone();
    padded.resize(bytes.len().div_ceil(4) * 4, 0);
    for gpu in paths() {
        let scales = gpu.upload("scales", &padded).unwrap();
        let row_exp = out(&gpu, "row_exp", rows.div_ceil(4));
        let d = row_exp_mf4w::RowExp {
            scales: &scales,
            rows: rows as u32,
            cols: 32 * nb as u32,
            row_exp: &row_exp,
        };
        gpu.run("row exp", &[&d.dispatch(&gpu).unwrap()]).unwrap();
        let words = gpu.read_u32(&row_exp).unwrap();
        let got: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(rows)
            .collect();
        assert_eq!(got, want, "{}", gpu.adapter_name());
        // The last word's bytes past the rows stay zero (nothing reads them).
        assert_eq!(
            words[rows / 4] >> (8 * (rows % 4)),
            0,
            "{}",
            gpu.adapter_name()
        );
    }
}

#[test]
fn grouped_moe_prefill_matches_per_token_reference() {
    // Every token prefers expert 2, then 0: every token on the same k experts, the rest idle.
    let one_expert: Vec<f32> = (0..70).flat_map(|_| [1.0, -2.0, 5.0, -1.0, 0.0]).collect();
    // Token loads skewed towards low experts; experts 5..7 get no tokens.
    let skewed: Vec<f32> = (0..33)
        .flat_map(|t| {
            (0..8).map(move |e| {
                if e >= 5 {
                    -10.0
                } else {
                    ((t * 7 + e * 3) % 5) as f32 - e as f32 * 0.3
                }
            })
        })
        .collect();
    // (tokens, hidden, inter, experts, k)
    let cases = [
        MoeCase::new(1, 64, 64, 4, 2),
        MoeCase::new(70, 64, 96, 5, 2).logits(one_expert),
        MoeCase::new(33, 96, 64, 8, 3).logits(skewed),
        MoeCase::new(45, 64, 64, 6, 4).parts(&[(0, 2), (2, 3), (5, 1)]),
        // Many entries (600 tokens x 4) for few experts.
        MoeCase::new(600, 64, 32, 5, 4),
        // Scales near zero (subnormal weights) and at or above 129 (large ones): no overflow.
        // No clamp: large values flow through to the output (as in tests/kernels.rs), where
        // a relative tolerance applies; a clamp would make small outputs out of huge terms.
        MoeCase::new(40, 64, 64, 4, 2)
            .limit(1e30)
            .scales(&ADVERSARIAL_SCALES[..8]),
        // Normalised activations up to ~1e6, beyond f16's range: the f16 path must shift them.
        MoeCase::new(20, 64, 64, 4, 2).gain(2.0e5),
        // Blocks 7 to 27 binades below their row's largest: on the f16 path their weights
        // land on f16's subnormals (exactly to 23 below, rounded at 24 and more). This runs
        // that decode; the tolerance, relative to the row's largest terms, cannot resolve
        // those weights themselves.
        MoeCase::new(40, 128, 64, 4, 2)
            .limit(1e30)
            .scales(&[100, 103, 104, 106, 110, 113, 116, 120, 127]),
    ];
    for_each_case(&cases, 400, check_moe_prefill);
    match common::coop_gpu() {
        Some(gpu) => {
            for (i, c) in cases.iter().enumerate() {
                check_moe_prefill_on(&gpu, c, 400 + i as u64, ExpertPath::Coop);
            }
        }
        None => eprintln!("no adapter with cooperative matrices: f32 tiles only"),
    }
}

/// The routing (moe_topk_prefill, then moe_route_prefill) against the CPU's top-k and a
/// stable grouping by expert, exactly. moe_route_prefill's bit mask takes (up to) 8,192 /
/// experts words an expert, a bit per entry, split over 256 / experts invocations: 256
/// experts give chunks of 1,024 entries, so 2,500 tokens (10,000 entries) take ten, the last
/// one partial; 64 experts split each row in 4 segments and take 5,000 tokens in five chunks;
/// 24 experts leave uneven segments and idle invocations, and 4,000 tokens of 3 entries take
/// two chunks. The last experts of each case get no tokens.
#[test]
fn routing_groups_entries_by_expert_across_chunks() {
    for (i, &(t, e, k)) in [(2500usize, 256usize, 4usize), (5000, 64, 4), (4000, 24, 3)]
        .iter()
        .enumerate()
    {
        check_routing(t, e, k, 77 + i as u64);
    }
}

fn check_routing(t: usize, e: usize, k: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut logits = rng.vec_sym(t * e, 4.0);
    for tok in 0..t {
        for ex in e - e / 32 - 1..e {
            logits[tok * e + ex] = -100.0;
        }
    }
    // The reference: each token's choices, then entries grouped by expert in entry order.
    let mut ids = Vec::new();
    let mut weights = Vec::new();
    for tok in 0..t {
        let (i, w) = r::router_topk(&logits[tok * e..(tok + 1) * e], k);
        ids.extend(i.iter().map(|&x| x as u32));
        weights.extend(w);
    }
    let mut offsets = vec![0u32];
    let mut sorted = Vec::new();
    let mut tiles = Vec::new();
    for ex in 0..e as u32 {
        let start = sorted.len() as u32;
        sorted.extend((0..(t * k) as u32).filter(|&i| ids[i as usize] == ex));
        let end = sorted.len() as u32;
        tiles.extend((start..end).step_by(TILE_M as usize).flat_map(|s| [ex, s]));
        offsets.push(end);
    }
    let mut slot_pos = vec![0u32; t * k];
    for (at, &entry) in sorted.iter().enumerate() {
        slot_pos[entry as usize] = at as u32;
    }

    for gpu in paths() {
        let lb = up(&gpu, "logits", &logits);
        let routing = Routing::new(&gpu, t as u32, k as u32, e as u32).unwrap();
        let route = moe_route_prefill::MoeRoutePrefill {
            shape: moe_shape(64, 64, e, k),
            n_tokens: t as u32,
            logits: &lb,
            routing: &routing,
        };
        let ds = route.dispatches(&gpu).unwrap();
        gpu.run("routing", &ds.iter().collect::<Vec<_>>()).unwrap();
        let u = |b: &GpuBuffer, n: usize| gpu.read_u32(b).unwrap()[..n].to_vec();
        assert_eq!(u(&routing.experts, t * k), ids, "experts");
        assert_close(
            "routing weights",
            &gpu.read_f32(&routing.weights).unwrap()[..t * k],
            &weights,
            F32_ATOL,
            F32_RTOL,
        );
        assert_eq!(u(&routing.offsets, e + 1), offsets, "offsets");
        assert_eq!(u(&routing.sorted, t * k), sorted, "sorted");
        assert_eq!(u(&routing.slot_pos, t * k), slot_pos, "slot_pos");
        let n_tiles = u(&routing.tile_count, 1)[0] as usize;
        assert_eq!(n_tiles, tiles.len() / 2, "tile count");
        assert_eq!(u(&routing.tiles, 2 * n_tiles), tiles, "tiles");
    }
}
