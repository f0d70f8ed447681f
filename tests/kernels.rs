//! Every kernel against its CPU reference (src/reference), on seeded random data in the real
//! layouts and on named edge shapes, on the fast path and on the forced portable path. Outputs
//! are poisoned with NaN before each run so unwritten elements show.

mod common;

use common::kernels::*;
use oss_wgpu::reference::{self as r, Sampling};

/// f32 sums of up to a few thousand terms against f64: relative error well under 1e-5 per
/// term; 1e-4 relative plus a small absolute floor leaves room for cancellation.
const F32_RTOL: f32 = 1e-4;
const F32_ATOL: f32 = 1e-5;

#[test]
fn embed_gathers_rows_from_split_tables() {
    let mut rng = Rng::new(1);
    let (vocab, hidden) = (50usize, 64usize);
    let table = bf16_matrix(&mut rng, vocab, hidden, 1.0);
    let ids: Vec<u32> = vec![0, 49, 17, 29, 30, 17];
    let want = r::embed_f32_bf16w(&table, hidden, &ids);
    for gpu in paths() {
        let idb = gpu.upload_pod("ids", &ids).unwrap();
        let o = out(&gpu, "x", ids.len() * hidden);
        // Two parts split at row 30, as a lowered binding limit would split the table.
        run_row_parts(
            &gpu,
            "embed",
            &table,
            hidden,
            &[(0, 30), (30, 20)],
            |table| {
                embed_f32_bf16w::Embed {
                    table,
                    ids: &idb,
                    n_tokens: 6,
                    out: &o,
                }
                .dispatch(&gpu)
            },
        );
        assert_eq!(gpu.read_f32(&o).unwrap(), want);
    }
}

#[test]
fn rmsnorm_matches_reference() {
    let mut rng = Rng::new(2);
    let (t, h) = (3usize, 96usize);
    let mut x = rng.vec_sym(t * h, 3.0);
    x[5] = 900.0; // large activations as in deep layers
    let gain = rng.vec_sym(h, 2.0);
    let want = r::rmsnorm_f32(&x, &gain, 1e-5);
    for gpu in paths() {
        let (xb, gb, o) = (
            up(&gpu, "x", &x),
            up(&gpu, "gain", &gain),
            out(&gpu, "out", t * h),
        );
        let d = rmsnorm_f32::RmsNorm {
            x: &xb,
            gain: &gb,
            out: &o,
            n_tokens: t as u32,
            hidden: h as u32,
            eps: 1e-5,
        }
        .dispatch(&gpu)
        .unwrap();
        gpu.run("rmsnorm", &[&d]).unwrap();
        assert_close(
            "rmsnorm",
            &gpu.read_f32(&o).unwrap(),
            &want,
            F32_ATOL,
            F32_RTOL,
        );
    }
}

/// A matvec's weights, input and norm gain, drawn in that order.
fn matvec_inputs(rng: &mut Rng, rows: usize, k: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    let w = bf16_matrix(rng, rows, k, 0.5);
    let x = rng.vec_sym(k, 2.0);
    let gain = rng.vec_sym(k, 1.5);
    (w, x, gain)
}

#[test]
fn matvec_with_norm_bias_residual_and_split_rows() {
    let mut rng = Rng::new(3);
    // 37 rows: a partial last workgroup; K = 200: not a multiple of the workgroup's stride.
    let (rows, k) = (37usize, 200usize);
    let (w, x, gain) = matvec_inputs(&mut rng, rows, k);
    let bias = rng.vec_sym(rows, 1.0);
    let resid = rng.vec_sym(rows, 4.0);
    for gpu in paths() {
        let (xb, gb, bb) = (
            up(&gpu, "x", &x),
            up(&gpu, "gain", &gain),
            up(&gpu, "bias", &bias),
        );
        let wg0 = matvec_f32_bf16w::workgroups(&gpu, 20);
        let argmax = gpu
            .storage(
                "argmax",
                8 * (wg0 + matvec_f32_bf16w::workgroups(&gpu, 17)) as u64,
            )
            .unwrap();
        let normed = out(&gpu, "normed", k);
        // Plain, then fused norm + bias, then residual add into `resid`.
        for (norm, with_bias, residual) in [
            (false, false, false),
            (true, true, false),
            (false, true, true),
        ] {
            let want = r::matvec_f32_bf16w(
                &w,
                &x,
                norm.then_some((gain.as_slice(), 1e-5)),
                with_bias.then_some(bias.as_slice()),
                residual.then_some(resid.as_slice()),
            );
            let o = if residual {
                up(&gpu, "resid", &resid)
            } else {
                out(&gpu, "y", rows)
            };
            // Rows split in two parts at row 20, each with its own buffer and offset.
            let parts = [(0usize, 20usize), (20, 17)];
            run_row_parts(&gpu, "matvec", &w, k, &parts, |w| {
                let wg = if w.row0 == 0 { 0 } else { wg0 };
                matvec_f32_bf16w::Matvec {
                    w,
                    x: &xb,
                    norm: norm.then_some((&gb, 1e-5)),
                    bias: with_bias.then_some(&bb),
                    residual,
                    out: &o,
                    normed_out: norm.then_some(&normed),
                    argmax: Some((&argmax, wg)),
                }
                .dispatch(&gpu)
            });
            let what = format!("matvec norm={norm} bias={with_bias} residual={residual}");
            let got = gpu.read_f32(&o).unwrap();
            assert_close(&what, &got, &want, F32_ATOL, F32_RTOL);
            if norm {
                let want_normed = r::rmsnorm_f32(&x, &gain, 1e-5);
                assert_close(
                    "normed x",
                    &gpu.read_f32(&normed).unwrap(),
                    &want_normed,
                    F32_ATOL,
                    F32_RTOL,
                );
            }
            // Each workgroup's (max, row) over its rows of the GPU output.
            let pairs = gpu.read_u32(&argmax).unwrap();
            let wg_rows: Vec<(usize, usize)> = parts
                .iter()
                .flat_map(|&(r0, n)| {
                    let rows_per_wg = matvec_f32_bf16w::split(&gpu, n as u32).0 as usize;
                    (0..n.div_ceil(rows_per_wg)).map(move |w| {
                        (
                            r0 + w * rows_per_wg,
                            (r0 + n).min(r0 + (w + 1) * rows_per_wg),
                        )
                    })
                })
                .collect();
            for (wi, &(a, b)) in wg_rows.iter().enumerate() {
                let mut best = a;
                for i in a..b {
                    if got[i] > got[best] {
                        best = i;
                    }
                }
                assert_eq!(pairs[2 * wi + 1] as usize, best, "argmax of workgroup {wi}");
                assert_eq!(f32::from_bits(pairs[2 * wi]), got[best]);
            }
        }
    }
}

/// A decode attention case: `positions` tokens, sinks drawn with scale `sink_scale`.
struct AttnCase {
    heads: Heads,
    positions: usize,
    sink_scale: f32,
}

impl AttnCase {
    /// `h` query heads and `kvh` KV heads of `d`, `window` (0: full), over `positions` tokens;
    /// sinks of scale 1.
    const fn new(h: usize, kvh: usize, d: usize, window: usize, positions: usize) -> Self {
        AttnCase {
            heads: Heads::new(h, kvh, d, window),
            positions,
            sink_scale: 1.0,
        }
    }

    const fn sinks(self, sink_scale: f32) -> Self {
        AttnCase { sink_scale, ..self }
    }
}

/// Prefills the cache with RoPE + append for `positions` tokens (in steps of `chunk` tokens),
/// then runs decode attention for the last position and compares with the reference.
fn check_attention(gpu: &Gpu, c: &AttnCase, seed: u64) {
    let mut rng = Rng::new(seed);
    let heads = c.heads;
    let (h, kvh, d) = (heads.n_heads, heads.n_kv_heads, heads.head_dim);
    let stride = heads.stride();
    let n = c.positions;
    let qkv = rng.vec_sym(n * stride, 2.0);
    let sinks = rng.vec_sym(h, c.sink_scale);
    let cfg = tiny_rope_config(d);
    let table = oss_wgpu::model::rope::table(&cfg, n);
    let chunk = 7usize; // steps of 7 tokens: exercises ring wrap mid-step
    let capacity = if heads.window > 0 {
        heads.window + chunk
    } else {
        n
    };

    // Reference: rotate q and k of every token, attention for the last one.
    let (mut q_all, mut k_all, v_all) = heads.split(&qkv);
    let tokens = q_all
        .chunks_exact_mut(h * d)
        .zip(k_all.chunks_exact_mut(kvh * d));
    for (t, (q, k)) in tokens.enumerate() {
        for hv in q.chunks_exact_mut(d).chain(k.chunks_exact_mut(d)) {
            r::rope_f32(hv, t, &table);
        }
    }
    let q_last_rotated = &q_all[(n - 1) * h * d..];
    let want = r::attention_f32(
        heads.shape(),
        q_last_rotated,
        &[n - 1],
        &k_all,
        &v_all,
        &sinks,
    );

    let bufs = AttnBuffers::new(gpu, heads, capacity, chunk, &table);
    let attention = bufs.attention();
    let rope_d = rope_kv_append_f32::RopeKvAppend {
        attention,
        max_tokens: chunk as u32,
        rope: &bufs.rope,
    }
    .dispatch(gpu)
    .unwrap();
    // Every position but the last through the prefill-side RoPE + append, in steps.
    let mut t0 = 0;
    while t0 + 1 < n {
        let tn = chunk.min(n - 1 - t0);
        bufs.load(gpu, &qkv, t0, tn);
        gpu.run("rope", &[&rope_d]).unwrap();
        t0 += tn;
    }
    // Decode attention for the last position: q, k, v unrotated in a qkv row; the kernel
    // rotates them, appends k and v to the cache and attends.
    let q_last = up(gpu, "qkv.last", &qkv[(n - 1) * stride..n * stride]);
    let sinks_buf = up(gpu, "sinks", &sinks);
    let o = out(gpu, "attn", h * d);
    bufs.step.set_at(gpu, n - 1, 1, 0);
    let partials = out(
        gpu,
        "partials",
        attention_decode_f32::partials_len(h as u32, d as u32, n as u32) as usize,
    );
    let attn = attention_decode_f32::AttentionDecode {
        attention: AttentionStep {
            qkv: &q_last,
            ..attention
        },
        partials: &partials,
        rope: &bufs.rope,
        sinks: &sinks_buf,
        out: &o,
        // Its extra workgroups must leave the results alone (any buffer serves).
        prefetch: Some(&bufs.rope),
    };
    let comb = attention_combine_f32::AttentionCombine {
        n_heads: h as u32,
        head_dim: d as u32,
        window: heads.window as u32,
        step: &bufs.step,
        partials: &partials,
        sinks: &sinks_buf,
        out: &o,
    }
    .dispatch(gpu)
    .unwrap();
    let (atol, rtol) = attention_tolerance(gpu);
    let what = format!(
        "attention window={} positions={} heads={h}/{kvh} d={d} kv={:?}",
        heads.window,
        n,
        gpu.precision().kv
    );
    // Both head splits, whichever the plan would use here (appending the same k and v).
    use attention_decode_f32::HeadSplit;
    for split in [HeadSplit::One, HeadSplit::Grouped] {
        let mut dec = attn.dispatch(gpu, split).unwrap();
        dec.workgroups = attn.grid_shape(split).workgroups((n - 1) as u32);
        let what = format!("{what} {split:?}");
        gpu.poison(&o);
        // One chunk: the decode kernel's own output, which the plan uses without the combine.
        gpu.run("attention", &[&dec]).unwrap();
        if attention_decode_f32::single_chunk((n - 1) as u32, heads.window as u32) {
            let got = gpu.read_f32(&o).unwrap();
            assert_close(&format!("{what} (one chunk)"), &got, &want, atol, rtol);
            gpu.poison(&o);
        }
        gpu.run("attention combine", &[&comb]).unwrap();
        assert_close(&what, &gpu.read_f32(&o).unwrap(), &want, atol, rtol);
    }

    // The appended key of the last position, read back from its cache slot.
    let slot = (n - 1) % capacity;
    let elem = gpu.precision().kv.element_bytes() as usize;
    for head in 0..kvh {
        let off = ((head * capacity + slot) * d * elem) as u64;
        let raw = gpu
            .read_range(&bufs.k_cache, off, (d * elem) as u64)
            .unwrap();
        let k_gpu: Vec<f32> = if elem == 2 {
            raw.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()
        } else {
            bytemuck::pod_collect_to_vec(&raw)
        };
        let k_want = &k_all[((n - 1) * kvh + head) * d..((n - 1) * kvh + head + 1) * d];
        // f16: rounding to 11 significant bits, relative 4.9e-4.
        let rtol = if elem == 2 { 1e-3 } else { 1e-5 };
        assert_close("appended k", &k_gpu, k_want, 1e-5, rtol);
    }
}

/// A config with gpt-oss's YaRN settings scaled to a small head.
fn tiny_rope_config(head_dim: usize) -> oss_wgpu::config::ModelConfig {
    use oss_wgpu::config::{LayerType, ModelConfig, RopeScaling};
    ModelConfig {
        num_hidden_layers: 1,
        num_experts: 4,
        experts_per_token: 2,
        hidden_size: 64,
        intermediate_size: 64,
        head_dim,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        vocab_size: 64,
        sliding_window: 8,
        layer_types: vec![LayerType::Sliding],
        rms_norm_eps: 1e-5,
        swiglu_limit: 7.0,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling {
            factor: 8.0,
            beta_fast: 8.0,
            beta_slow: 1.0,
            original_max_position_embeddings: 32,
            truncate: false,
        },
        max_position_embeddings: 4096,
        eos_token_ids: vec![],
    }
}

#[test]
fn attention_decode_full_and_sliding_with_sinks() {
    // (heads, KV heads, head_dim, window, positions)
    let cases = [
        // A single position (the query sees only itself).
        AttnCase::new(4, 2, 16, 0, 1),
        // gpt-oss's group of 8 query heads per KV head and head_dim 64, over several chunks.
        AttnCase::new(16, 2, 64, 0, 300),
        // Sliding window: shorter than the window, exactly the window, past it (ring wraps).
        AttnCase::new(4, 1, 16, 8, 5),
        AttnCase::new(4, 1, 16, 8, 8),
        AttnCase::new(4, 1, 16, 8, 9),
        AttnCase::new(8, 2, 32, 20, 61),
        // Dominant sinks: most of the mass goes nowhere.
        AttnCase::new(4, 2, 16, 0, 40).sinks(30.0),
    ];
    for_each_case(&cases, 100, check_attention);
}

#[test]
fn attention_combine_merges_many_chunks() {
    // 300 chunks (more than the kernel's 256 invocations) and 2100 (more than the 2048 chunk
    // weights it keeps in workgroup memory), against the merge in f64.
    let mut rng = Rng::new(17);
    let (h, d) = (3usize, 64usize);
    let chunk = attention_decode_f32::CHUNK as usize;
    for n_chunks in [300usize, 2100] {
        let stride = d + 2;
        let mut partials = vec![0f32; n_chunks * h * stride];
        for c in 0..n_chunks {
            for head in 0..h {
                let base = (c * h + head) * stride;
                for v in &mut partials[base..base + d] {
                    *v = rng.sym(5.0);
                }
                partials[base + d] = rng.sym(20.0);
                partials[base + d + 1] = 0.5 + 40.0 * rng.unit();
            }
        }
        let sinks = rng.vec_sym(h, 3.0);
        let mut want = vec![0f32; h * d];
        let mut tol = vec![0f32; h * d];
        for head in 0..h {
            let at = |c: usize, i: usize| partials[(c * h + head) * stride + i] as f64;
            let m = (0..n_chunks).fold(sinks[head] as f64, |m, c| m.max(at(c, d)));
            let l = (sinks[head] as f64 - m).exp()
                + (0..n_chunks)
                    .map(|c| at(c, d + 1) * (at(c, d) - m).exp())
                    .sum::<f64>();
            for i in 0..d {
                let terms = (0..n_chunks).map(|c| at(c, i) * (at(c, d) - m).exp());
                let o: f64 = terms.clone().sum();
                let mag: f64 = terms.map(f64::abs).sum();
                want[head * d + i] = (o / l) as f32;
                // f32 sums and exps: within a small multiple of 2^-24 of the magnitudes.
                tol[head * d + i] = (F32_RTOL as f64 * mag / l) as f32 + F32_ATOL;
            }
        }
        for gpu in paths() {
            let step = StepBuffer::new(&gpu, "step").unwrap();
            step.set_at(&gpu, n_chunks * chunk - 1, 1, 0);
            let pb = up(&gpu, "partials", &partials);
            let sb = up(&gpu, "sinks", &sinks);
            let o = out(&gpu, "out", h * d);
            let comb = attention_combine_f32::AttentionCombine {
                n_heads: h as u32,
                head_dim: d as u32,
                window: 0,
                step: &step,
                partials: &pb,
                sinks: &sb,
                out: &o,
            }
            .dispatch(&gpu)
            .unwrap();
            gpu.run("combine", &[&comb]).unwrap();
            let what = format!("combine of {n_chunks} chunks on {}", gpu.adapter_name());
            assert_within(&what, &gpu.read_f32(&o).unwrap(), &want, &tol);
        }
    }
}

#[test]
fn router_matches_reference() {
    let mut rng = Rng::new(11);
    // (experts, hidden, k): gpt-oss-20b's 32 experts and k = 4; 120b's 128; a row length that
    // leaves the last chunks of a lane's stride partial; every expert chosen.
    for (e, h, k) in [
        (32usize, 2880usize, 4usize),
        (128, 256, 4),
        (5, 200, 5),
        (3, 64, 1),
    ] {
        let (w, mut x, gain) = matvec_inputs(&mut rng, e, h);
        x[7] = 300.0; // large activations as in deep layers
        let bias = rng.vec_sym(e, 1.0);
        let (want_xn, want_ids, want_w) = r::router_f32_bf16w(&w, &x, &gain, 1e-5, &bias, k);
        for gpu in paths() {
            let wb = gpu.upload("router.weight", &w).unwrap();
            let (xb, gb, bb) = (
                up(&gpu, "x", &x),
                up(&gpu, "gain", &gain),
                up(&gpu, "bias", &bias),
            );
            let xn = out(&gpu, "xn", h);
            // The logits and the workgroups' counter, which starts at 0 (a new buffer).
            let logits = gpu.storage("logits", (e as u64 + 1) * 4).unwrap();
            let route = out(&gpu, "route", 2 * k);
            let ds = router_f32_bf16w::Router {
                w: Bf16Rows {
                    buffer: &wb,
                    rows: e as u32,
                    k: h as u32,
                    row0: 0,
                },
                k: k as u32,
                x: &xb,
                gain: &gb,
                eps: 1e-5,
                bias: &bb,
                xn: &xn,
                logits: &logits,
                route: &route,
            }
            .dispatches(&gpu)
            .unwrap();
            let ds: Vec<_> = ds.iter().collect();
            gpu.run("router", &ds).unwrap();
            let what = format!("router E={e} H={h} k={k}");
            let got = gpu.read_u32(&route).unwrap();
            // Again, on a poisoned route: the last workgroup must have reset the counter.
            gpu.poison(&route);
            gpu.run("router again", &ds).unwrap();
            assert_eq!(gpu.read_u32(&route).unwrap(), got, "{what}: run twice");
            let ids: Vec<usize> = got[..k].iter().map(|&v| v as usize).collect();
            assert_eq!(ids, want_ids, "{what}: top-k");
            let got_w: Vec<f32> = got[k..].iter().map(|&b| f32::from_bits(b)).collect();
            assert_close(
                &format!("{what} weights"),
                &got_w,
                &want_w,
                F32_ATOL,
                F32_RTOL,
            );
            let got_xn = gpu.read_f32(&xn).unwrap();
            assert_close(&format!("{what} xn"), &got_xn, &want_xn, F32_ATOL, F32_RTOL);
        }
    }
}

fn check_moe(gpu: &Gpu, c: &MoeCase, seed: u64) {
    assert_eq!(c.tokens, 1, "decode: one token");
    let (h, i, e, k) = (c.hidden, c.inter, c.experts, c.k);
    let inputs = c.draw(seed);
    let (x, gain, logits) = (&inputs.x, &inputs.gain, &inputs.logits);
    let experts = inputs.weights.as_ref();
    let want_act = r::moe_gate_up_f32_mf4w(x, gain, 1e-5, logits, k, c.limit, &experts);
    let want_x = r::moe_down_f32_mf4w(x, logits, k, &want_act, &experts);

    // The decode chain: the router (all-zero weights, so the logits are its bias) writes
    // the normalised x and the route; then gate_up and down.
    let zero_router = gpu.upload("router.weight", &vec![0u8; e * h * 2]).unwrap();
    let lb = up(gpu, "router.bias", logits);
    let xb = up(gpu, "x", x);
    let gb = up(gpu, "gain", gain);
    let xn = out(gpu, "xn", h);
    let route = gpu.storage("route", (2 * k * 4) as u64).unwrap();
    // The logits and the router's workgroup counter, which must start at 0 (a new buffer).
    let router_logits = gpu.storage("router logits", (e as u64 + 1) * 4).unwrap();
    let act = out(gpu, "act", k * i);
    let router = router_f32_bf16w::Router {
        w: Bf16Rows {
            buffer: &zero_router,
            rows: e as u32,
            k: h as u32,
            row0: 0,
        },
        k: k as u32,
        x: &xb,
        gain: &gb,
        eps: 1e-5,
        bias: &lb,
        xn: &xn,
        logits: &router_logits,
        route: &route,
    }
    .dispatches(gpu)
    .unwrap();
    let moe = MoeBuffers {
        shape: c.shape(),
        xn: &xn,
        act: &act,
        out: &xb,
    };
    let n_router = router.len();
    let mut gate_up = router;
    let mut down = Vec::new();
    for part in &ExpertPartBuffers::upload_all(gpu, &experts, &c.parts) {
        let gu = part.gate_up();
        let gate_up_d = moe_gate_up_f32_mf4w::MoeGateUp {
            moe,
            experts: &gu,
            limit: c.limit,
            route: &route,
        };
        gate_up.push(gate_up_d.dispatch(gpu).unwrap());
        let dn = part.down();
        let down_d = moe_down_f32_mf4w::MoeDown {
            moe,
            experts: &dn,
            route: &route,
        };
        down.push(down_d.dispatch(gpu).unwrap());
    }
    let all: Vec<_> = gate_up.iter().chain(down.iter()).collect();
    gpu.run("moe", &all).unwrap();
    let what = format!("moe E={e} k={k} parts={:?}", c.parts);
    let (want_ids, want_w) = r::router_topk(logits, k);
    let got_route = gpu.read_u32(&route).unwrap();
    let got_ids: Vec<usize> = got_route[..k].iter().map(|&v| v as usize).collect();
    assert_eq!(got_ids, want_ids, "{what}: router top-k");
    // Again, on a poisoned route: the last workgroup must have reset the counter.
    gpu.poison(&route);
    let again: Vec<_> = gate_up[..n_router].iter().collect();
    gpu.run("router again", &again).unwrap();
    assert_eq!(
        gpu.read_u32(&route).unwrap(),
        got_route,
        "{what}: router run twice"
    );
    let got_w: Vec<f32> = got_route[k..].iter().map(|&b| f32::from_bits(b)).collect();
    assert_close(
        &format!("{what} routing weights"),
        &got_w,
        &want_w,
        1e-6,
        1e-5,
    );
    // f32 sums: within F32_RTOL of the magnitude of what each output sums (long rows of
    // large terms cancel).
    let bounds = moe_error_bounds(x, gain, logits, k, c.limit, &experts, false);
    let act_tol: Vec<f32> = bounds.act.iter().map(|m| F32_ATOL + F32_RTOL * m).collect();
    let x_tol: Vec<f32> = bounds
        .x
        .iter()
        .map(|(m, _)| F32_ATOL + F32_RTOL * m)
        .collect();
    assert_within(
        &format!("{what} act"),
        &gpu.read_f32(&act).unwrap(),
        &want_act,
        &act_tol,
    );
    assert_within(
        &format!("{what} x"),
        &gpu.read_f32(&xb).unwrap(),
        &want_x,
        &x_tol,
    );
}

#[test]
fn moe_decode_matches_reference() {
    // (tokens, hidden, inter, experts, k)
    let cases = [
        MoeCase::new(1, 64, 96, 5, 3),
        // A small limit so the clamp triggers on most values.
        MoeCase::new(1, 96, 64, 8, 4).limit(0.5),
        // Experts split over three buffers.
        MoeCase::new(1, 64, 64, 6, 4).parts(&[(0, 2), (2, 3), (5, 1)]),
        // More (slot, rows) units than a workgroup has groups (k = 8), over three parts.
        MoeCase::new(1, 64, 64, 12, 8).parts(&[(0, 5), (5, 2), (7, 5)]),
        MoeCase::new(1, 64, 64, 4, 2)
            .limit(1e30)
            .scales(&ADVERSARIAL_SCALES),
        // Ties: the lowest index wins.
        MoeCase::new(1, 64, 32, 6, 2).logits(vec![1.0, 2.0, 0.5, 2.0, 2.0, -1.0]),
        // Rows of 100 blocks: more than a 32-lane subgroup's loads of one pass (3 per lane),
        // so both kernels take a second pass over K.
        MoeCase::new(1, 3200, 3200, 4, 2),
    ];
    for_each_case(&cases, 200, check_moe);
}

#[test]
fn sampler_greedy_and_seeded_sampling_match_reference() {
    let mut rng = Rng::new(9);
    let vocab = 3001usize; // not a multiple of the workgroup
    for gpu in paths() {
        let step = StepBuffer::new(&gpu, "step").unwrap();
        let tokens = gpu.storage("tokens", 4).unwrap();
        let history = gpu.storage("history", 64 * 4).unwrap();
        for trial in 0..12u32 {
            let mut logits = rng.vec_sym(vocab, 4.0);
            if trial == 0 {
                // A tie for the maximum: the lowest id wins.
                logits[2000] = 10.0;
                logits[700] = 10.0;
            }
            let s = match trial % 4 {
                0 => Sampling {
                    temperature: 0.0,
                    top_k: 0,
                    top_p: 1.0,
                    seed: 0,
                },
                1 => Sampling {
                    temperature: 0.8,
                    top_k: 0,
                    top_p: 1.0,
                    seed: 42 + trial,
                },
                2 => Sampling {
                    temperature: 1.0,
                    top_k: 20,
                    top_p: 1.0,
                    seed: 7 * trial,
                },
                _ => Sampling {
                    temperature: 0.7,
                    top_k: 50,
                    top_p: 0.9,
                    seed: trial,
                },
            };
            let lb = up(&gpu, "logits", &logits);
            // Greedy draws alternate between the lm_head's per-workgroup maxima (chunks of 16
            // ids here, lowest id first among equals) and a scan of all logits.
            let use_partials = trial % 8 == 0;
            let partials: Vec<u32> = logits
                .chunks(16)
                .enumerate()
                .flat_map(|(ci, ch)| {
                    let mut b = 0;
                    for (j, &v) in ch.iter().enumerate() {
                        if v > ch[b] {
                            b = j;
                        }
                    }
                    [ch[b].to_bits(), (ci * 16 + b) as u32]
                })
                .collect();
            let pb = gpu.upload_pod("partials", &partials).unwrap();
            let n_partials = if use_partials {
                (partials.len() / 2) as u32
            } else {
                0
            };
            let d = sample_f32::Sample {
                vocab: vocab as u32,
                top_k: s.top_k as u32,
                temperature: s.temperature,
                top_p: s.top_p,
                seed: s.seed,
                step: &step,
                logits: &lb,
                tokens: &tokens,
                history: &history,
                partials: Some((&pb, n_partials)),
            }
            .dispatch(&gpu)
            .unwrap();
            step.set_at(&gpu, 0, 1, trial as usize);
            gpu.run("sample", &[&d]).unwrap();
            let got = gpu.read_u32(&tokens).unwrap()[0];
            let hist = gpu.read_u32(&history).unwrap()[trial as usize];
            assert_eq!(got, hist, "history and token disagree");
            let want = r::sample_f32(&logits, &s, trial);
            if trial == 0 {
                assert_eq!(want, 700);
            }
            if got != want {
                // Only a draw landing within rounding of a boundary may differ.
                let cands = r::sample_candidates(&logits, &s);
                let total: f64 = cands.iter().map(|c| c.1).sum();
                let target = r::sample_uniform(s.seed, trial) as f64 * total;
                let mut acc = 0.0;
                let mut near = false;
                for &(_, w) in &cands {
                    acc += w;
                    near |= (acc - target).abs() < 1e-5 * total;
                }
                assert!(
                    near,
                    "trial {trial}: GPU chose {got}, reference {want} ({s:?})"
                );
                assert!(
                    cands.iter().any(|c| c.0 as u32 == got),
                    "GPU chose a token outside the candidates"
                );
            }
        }
    }
}

/// The lm_head's shape class (many rows: four rows per group step) with the fused norm and the
/// per-workgroup maxima, against the reference; 16390 rows leave a partial last workgroup.
#[test]
fn matvec_many_rows_with_argmax() {
    let mut rng = Rng::new(31);
    let (rows, k) = (16390usize, 64usize);
    let (w, x, gain) = matvec_inputs(&mut rng, rows, k);
    let want = r::matvec_f32_bf16w(&w, &x, Some((&gain, 1e-5)), None, None);
    for gpu in paths() {
        assert_eq!(
            matvec_f32_bf16w::split(&gpu, rows as u32).1,
            4,
            "this test is for the R = 4 path"
        );
        let wb = gpu.upload("lm_head", &w).unwrap();
        let (xb, gb) = (up(&gpu, "x", &x), up(&gpu, "gain", &gain));
        let o = out(&gpu, "logits", rows);
        let n_wg = matvec_f32_bf16w::workgroups(&gpu, rows as u32);
        let argmax = gpu.storage("argmax", 8 * n_wg as u64).unwrap();
        let d = matvec_f32_bf16w::Matvec {
            w: Bf16Rows {
                buffer: &wb,
                rows: rows as u32,
                k: k as u32,
                row0: 0,
            },
            x: &xb,
            norm: Some((&gb, 1e-5)),
            bias: None,
            residual: false,
            out: &o,
            normed_out: None,
            argmax: Some((&argmax, 0)),
        }
        .dispatch(&gpu)
        .unwrap();
        gpu.run("lm_head", &[&d]).unwrap();
        let got = gpu.read_f32(&o).unwrap();
        assert_close("lm_head", &got, &want, F32_ATOL, F32_RTOL);
        let pairs = gpu.read_u32(&argmax).unwrap();
        let best_pair = (0..n_wg as usize)
            .max_by(|&a, &b| {
                let (va, vb) = (f32::from_bits(pairs[2 * a]), f32::from_bits(pairs[2 * b]));
                va.partial_cmp(&vb)
                    .unwrap()
                    .then(pairs[2 * b + 1].cmp(&pairs[2 * a + 1]))
            })
            .unwrap();
        let mut best = 0;
        for i in 0..rows {
            if got[i] > got[best] {
                best = i;
            }
        }
        assert_eq!(
            pairs[2 * best_pair + 1] as usize,
            best,
            "argmax over the workgroup maxima"
        );
    }
}
