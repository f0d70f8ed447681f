//! Prefill kernels (batched over tokens) against the CPU references: the tiled matmul, tiled
//! attention over the cache, and the grouped MoE path with its named edge cases (uneven loads,
//! experts with no tokens, a single token, every token on one expert, experts split over
//! buffers). Both paths; outputs poisoned first.

mod common;

use common::kernels::*;
use oss_wgpu::reference::{self as r, ExpertsRef};

/// f32 sums against f64 references (see tests/kernels.rs).
const F32_RTOL: f32 = 1e-4;
const F32_ATOL: f32 = 1e-5;

#[test]
fn matmul_matches_per_token_matvec() {
    let mut rng = Rng::new(11);
    // 70 tokens and 100 rows: partial tiles both ways; K = 96.
    let (t, rows, k) = (70usize, 100usize, 96usize);
    let w = bf16_matrix(&mut rng, rows, k, 0.5);
    let x = rng.vec_sym(t * k, 2.0);
    let bias = rng.vec_sym(rows, 1.0);
    let resid = rng.vec_sym(t * rows, 3.0);
    let mut want = Vec::new();
    for tok in 0..t {
        want.extend(r::matvec_f32_bf16w(
            &w,
            &x[tok * k..(tok + 1) * k],
            None,
            Some(&bias),
            Some(&resid[tok * rows..(tok + 1) * rows]),
        ));
    }
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

fn check_prefill_attention(gpu: &Gpu, c: &PrefillAttn, seed: u64) {
    let mut rng = Rng::new(seed);
    let heads = c.heads;
    let (h, d) = (heads.n_heads, heads.head_dim);
    let n = c.total;
    // Already-rotated q and k: this test is about attention (RoPE is tested in kernels.rs), so
    // the rope table is the identity (cos 1, sin 0).
    let qkv = rng.vec_sym(n * heads.stride(), 2.0);
    let sinks = rng.vec_sym(h, 2.0);
    let table: Vec<[f32; 2]> = vec![[1.0, 0.0]; n * d / 2];
    let capacity = if heads.window > 0 {
        heads.window + c.step_tokens
    } else {
        n
    };

    let (q_all, k_all, v_all) = heads.split(&qkv);
    let positions: Vec<usize> = (0..n).collect();
    let want = r::attention_f32(heads.shape(), &q_all, &positions, &k_all, &v_all, &sinks);

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
        ad.workgroups = attn.grid(tn as u32);
        gpu.poison(&o);
        gpu.run("prefill attention", &[&rd, &ad]).unwrap();
        let part = gpu.read_range(&o, 0, (tn * h * d * 4) as u64).unwrap();
        got.extend(bytemuck::pod_collect_to_vec::<u8, f32>(&part));
        t0 += tn;
    }
    let (atol, rtol) = attention_tolerance(gpu);
    let what = format!(
        "prefill attention window={} steps of {} over {n}",
        heads.window, c.step_tokens
    );
    assert_close(&what, &got, &want, atol, rtol);
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
}

fn check_moe_prefill(gpu: &Gpu, c: &MoeCase, seed: u64) {
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
    let mut ds = vec![norm.dispatch(gpu).unwrap(), route.dispatch(gpu).unwrap()];
    let parts = ExpertPartBuffers::upload_all(gpu, &experts, &c.parts);
    let moe = MoeBuffers {
        shape,
        xn: &xn,
        act: &act,
        out: &y,
    };
    for part in &parts {
        let gate_up = moe_gate_up_prefill_f32_mf4w::MoeGateUpPrefill {
            moe,
            experts: &part.gate_up(),
            limit: c.limit,
            max_tokens: t as u32,
            routing: &routing,
        };
        ds.push(gate_up.dispatch(gpu).unwrap());
        let down = moe_down_prefill_f32_mf4w::MoeDownPrefill {
            moe,
            experts: &part.down(),
            max_tokens: t as u32,
            routing: &routing,
        };
        ds.push(down.dispatch(gpu).unwrap());
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
    let what = format!("moe prefill T={t} E={e} k={k} parts={:?}", c.parts);
    // f32 rounding errors scale with the magnitudes of the terms summed, not with the result:
    // with scales up to 2^7 and no clamp, outputs near 1e4 are what is left of terms near 1e6.
    let magnitude: Vec<f32> = (0..t)
        .flat_map(|tok| {
            moe_term_magnitudes(
                &x[tok * h..(tok + 1) * h],
                gain,
                &logits[tok * e..(tok + 1) * e],
                k,
                c.limit,
                &experts,
            )
        })
        .collect();
    let got = gpu.read_f32(&xb).unwrap();
    let mut worst = (0f32, 0usize);
    for (n, ((&g, &w), &m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
        assert!(!g.is_nan(), "{what}: NaN at index {n} (want {w})");
        let tol = F32_ATOL + F32_RTOL * m;
        let d = (g - w).abs();
        assert!(
            d <= tol,
            "{what}: index {n}: got {g}, want {w} (|diff| {d} > tol {tol}; terms of magnitude {m})"
        );
        if d / m.max(1e-30) > worst.0 {
            worst = (d / m.max(1e-30), n);
        }
    }
    eprintln!(
        "{what}: largest |diff| / term magnitude {:.1e} at index {}",
        worst.0, worst.1
    );
}

/// Per output of one token's MoE block, the sum of the magnitudes of everything summed into
/// it: |x| + sum_j w_j (sum_i |W2_ri| (|act_ji| + err_ji) + |b2|), where err_ji bounds how
/// far act moves per unit of relative error in its own sums (|d swiglu/dg| <= 1.1 and
/// |d swiglu/du| = |g sigmoid(1.702 g)|, times the magnitudes of the gate and up sums). An f32
/// kernel lands within a small multiple of 2^-24 x terms x magnitude of the f64 result.
fn moe_term_magnitudes(
    x: &[f32],
    gain: &[f32],
    logits: &[f32],
    k: usize,
    limit: f32,
    ex: &ExpertsRef<'_>,
) -> Vec<f32> {
    use oss_wgpu::checkpoint::mxfp4::decode_f64;
    let (h, i) = (ex.hidden, ex.inter);
    let xn = r::rmsnorm_f32(x, gain, 1e-5);
    let (ids, weights) = r::router_topk(logits, k);
    let row = |blocks: &[u8], scales: &[u8], r: usize, n: usize| {
        let nb = n / 32;
        decode_f64(
            &blocks[r * nb * 16..(r + 1) * nb * 16],
            &scales[r * nb..(r + 1) * nb],
        )
    };
    let mut out: Vec<f64> = x.iter().map(|&v| v.abs() as f64).collect();
    for (&e, &w) in ids.iter().zip(&weights) {
        let mut act_mag = Vec::with_capacity(i);
        for j in 0..i {
            let sums = |r: usize| {
                let wr = row(ex.gate_up_blocks, ex.gate_up_scales, e * 2 * i + r, h);
                let b = ex.gate_up_bias[e * 2 * i + r] as f64;
                let v: f64 = wr.iter().zip(&xn).map(|(&a, &q)| a * q as f64).sum::<f64>() + b;
                let m: f64 = wr
                    .iter()
                    .zip(&xn)
                    .map(|(&a, &q)| (a * q as f64).abs())
                    .sum::<f64>()
                    + b.abs();
                (v, m)
            };
            let ((g, gm), (u, um)) = (sums(2 * j), sums(2 * j + 1));
            let act = r::swiglu(g, u, limit as f64).abs();
            let gs = g.min(limit as f64);
            let dg = 1.1 * (u.clamp(-(limit as f64), limit as f64) + 1.0).abs();
            let du = (gs / (1.0 + (-1.702 * gs).exp())).abs();
            act_mag.push(act + dg * gm + du * um);
        }
        for (r, o) in out.iter_mut().enumerate() {
            let wr = row(ex.down_blocks, ex.down_scales, e * h + r, i);
            let s: f64 = wr.iter().zip(&act_mag).map(|(&a, &m)| a.abs() * m).sum();
            *o += w as f64 * (s + (ex.down_bias[e * h + r] as f64).abs());
        }
    }
    out.into_iter().map(|v| v as f32).collect()
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
        // More entries (600 tokens x 4) than the routing kernel stages at once (2048).
        MoeCase::new(600, 64, 32, 5, 4),
        // Scales near zero (subnormal weights) and at or above 129 (large ones): no overflow.
        // No clamp: large values flow through to the output (as in tests/kernels.rs), where
        // a relative tolerance applies; a clamp would make small outputs out of huge terms.
        MoeCase::new(40, 64, 64, 4, 2)
            .limit(1e30)
            .scales(&ADVERSARIAL_SCALES[..8]),
    ];
    for_each_case(&cases, 400, check_moe_prefill);
}
