//! Per-kernel benchmarks at gpt-oss-20b and -120b shapes: every decode kernel at context depths
//! 128, 4096 and 32768, and the prefill kernels on 512 tokens, each with its achieved GB/s
//! (decode, memory-bound) or GFLOP/s (prefill, compute-bound) and the fraction of the
//! bandwidth that this run measures first. Weights are synthetic (two layers: one sliding,
//! one full), generated on the GPU.
//!
//!   cargo bench --bench kernels                  # both presets, all depths
//!   cargo bench --bench kernels -- 20b 4096      # one preset, one depth
//!
//! The adapter is chosen as everywhere (OSS_WGPU_BACKEND, OSS_WGPU_ADAPTER, OSS_WGPU_PORTABLE).

use std::collections::BTreeMap;

use oss_wgpu::bench::measure_bandwidth;
use oss_wgpu::config::ModelConfig;
use oss_wgpu::gpu::{Gpu, GpuOptions};
use oss_wgpu::model::forward::{Forward, DEFAULT_CHUNK};
use oss_wgpu::model::{synthetic, Model};

const REPS: usize = 5;

/// Adds one step's (kernel, ns) times to `samples`, keyed by (n-th dispatch of that kernel in
/// the step, kernel): the layers' dispatches of one kernel stay apart.
fn add_step(samples: &mut BTreeMap<(usize, String), Vec<f64>>, times: Vec<(String, f64)>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (name, ns) in times {
        let n = seen.entry(name.clone()).or_default();
        samples.entry((*n, name)).or_default().push(ns);
        *n += 1;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Bytes a decode kernel must read once (weights, KV cache), per dispatch.
fn decode_bytes(
    c: &ModelConfig,
    name: &str,
    depth: usize,
    window: bool,
    kv_elem: u64,
) -> Option<f64> {
    let (h, i, k) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.experts_per_token as f64,
    );
    let mxfp4 = |rows: f64, cols: f64| rows * (cols / 2.0 + cols / 32.0 + 4.0);
    Some(match name {
        "matvec_f32_bf16w qkv_proj" => (c.q_dim() + 2 * c.kv_dim()) as f64 * h * 2.0,
        "matvec_f32_bf16w o_proj" => h * c.q_dim() as f64 * 2.0,
        "router_f32_bf16w" => c.num_experts as f64 * h * 2.0,
        "matvec_f32_bf16w lm_head" => c.vocab_size as f64 * h * 2.0,
        "moe_gate_up_f32_mf4w" => k * mxfp4(2.0 * i, h),
        "moe_down_f32_mf4w" => k * mxfp4(h, i),
        "attention_decode_f32" => {
            let visible = if window {
                depth.min(c.sliding_window)
            } else {
                depth
            } as f64;
            2.0 * visible * c.kv_dim() as f64 * kv_elem as f64
        }
        _ => return None,
    })
}

/// FLOPs of a prefill kernel over `t` tokens at positions 0..t, per dispatch.
fn prefill_flops(c: &ModelConfig, name: &str, t: usize, window: bool) -> Option<f64> {
    let (h, i, k, t_f) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.experts_per_token as f64,
        t as f64,
    );
    Some(match name {
        "matmul_f32_bf16w qkv_proj" => 2.0 * t_f * (c.q_dim() + 2 * c.kv_dim()) as f64 * h,
        "matmul_f32_bf16w o_proj" => 2.0 * t_f * h * c.q_dim() as f64,
        "moe_gate_up_prefill_f32_mf4w" => 2.0 * t_f * k * 2.0 * i * h,
        "moe_down_prefill_f32_mf4w" => 2.0 * t_f * k * h * i,
        "attention_prefill_f32" | "attention_prefill_f16" => {
            let keys: f64 = (0..t)
                .map(|p| if window { (p + 1).min(c.sliding_window) } else { p + 1 } as f64)
                .sum();
            // q.k and p.v: 2 FLOPs per multiply-add, head_dim each, every query head.
            4.0 * keys * c.head_dim as f64 * c.num_attention_heads as f64
        }
        _ => return None,
    })
}

/// The device with cooperative matrices on, for the probes; None (said so) where it has none.
fn coop_gpu() -> Option<Gpu> {
    let opts = GpuOptions {
        coop: true,
        ..GpuOptions::from_env().expect("OSS_WGPU_* variables")
    };
    let gpu = Gpu::new(&opts).expect("a GPU adapter");
    if !gpu.precision().coop {
        println!("{}: no cooperative matrices", gpu.info.name);
        return None;
    }
    Some(gpu)
}

/// How the cooperative-matrix matmul (matmul_f16_bf16w) accumulates, for deriving its error
/// bound: rows of one 1.0 and K - 1 terms of +-2^-e (all exact in f16 after the kernel's row
/// shift) times an all-ones token. Prints each row's result in units of 2^-24 beside the
/// exact sum and what a sequential round-to-nearest f32 sum gives. `cargo bench --bench
/// kernels -- coop-accumulation`.
fn coop_accumulation() {
    use oss_wgpu::kernels::{matmul_f16_bf16w, row_shift_f32, weight_shift_bf16w, Bf16Rows};
    let Some(gpu) = coop_gpu() else {
        return;
    };
    let k = 256usize;
    let mut rows: Vec<(u32, bool, f32)> = Vec::new();
    for e in [20u32, 22, 23, 24, 25, 26, 27, 28] {
        for big_first in [true, false] {
            for sign in [1.0f32, -1.0] {
                rows.push((e, big_first, sign));
            }
        }
    }
    let mut w = Vec::new();
    for &(e, big_first, sign) in &rows {
        let mut row = vec![sign * 2f32.powi(-(e as i32)); k];
        row[if big_first { 0 } else { k - 1 }] = 1.0;
        w.extend(row);
    }
    let x = vec![1f32; k];
    let wb = gpu
        .upload("probe.w", &oss_wgpu::reference::f32_to_bf16(&w))
        .unwrap();
    let xb = gpu.upload("probe.x", bytemuck::cast_slice(&x)).unwrap();
    let shift = gpu.storage("probe.shift", 4).unwrap();
    let x16 = gpu.storage("probe.x16", k as u64 * 4).unwrap();
    let out = gpu.storage("probe.out", rows.len() as u64 * 4).unwrap();
    let s = row_shift_f32::RowShift {
        n_tokens: 1,
        hidden: k as u32,
        x: &xb,
        shift: &shift,
        x16: &x16,
    }
    .dispatch(&gpu)
    .unwrap();
    let rows_w = Bf16Rows {
        buffer: &wb,
        rows: rows.len() as u32,
        k: k as u32,
        row0: 0,
    };
    let w_shift = gpu.storage("probe.w_shift", rows.len() as u64 * 4).unwrap();
    let ws = weight_shift_bf16w::WeightShift {
        w: rows_w,
        w_shift: &w_shift,
    }
    .dispatch(&gpu)
    .unwrap();
    let m = matmul_f16_bf16w::MatmulF16 {
        w: rows_w,
        w_shift: &w_shift,
        n_tokens: 1,
        x16: &x16,
        shift: &shift,
        bias: None,
        residual: false,
        out: &out,
        out_stride: rows.len() as u32,
    }
    .dispatch(&gpu)
    .unwrap();
    gpu.run("probe", &[&s, &ws, &m]).unwrap();
    let got = gpu.read_f32(&out).unwrap();
    println!(
        "{} ({}, {}): matmul_f16_bf16w, K = {k}, results as (sum - 1) / 2^-24",
        gpu.info.name,
        gpu.info.backend.to_str(),
        gpu.info.driver_info
    );
    println!("   e  big    sign      exact  f32 in order        GPU");
    let u = 2f64.powi(-24);
    for (r, &(e, big_first, sign)) in rows.iter().enumerate() {
        let row = &w[r * k..(r + 1) * k];
        let exact: f64 = row.iter().map(|&v| v as f64).sum();
        let seq = row.iter().fold(0f32, |a, &v| a + v);
        println!(
            "  {e:>2}  {:<5}  {:>4}  {:>9.3}  {:>12.3}  {:>9.3}",
            if big_first { "first" } else { "last" },
            if sign > 0.0 { "+" } else { "-" },
            (exact - 1.0) / u,
            (seq as f64 - 1.0) / u,
            (got[r] as f64 - 1.0) / u
        );
    }
}

/// Whether a cooperative-matrix load takes an f16 tile through a pointer to another element
/// type: the tile (row stride 32 halfs) stored in workgroup memory as `layout` (f16, vec2<f16>,
/// vec4<f16>, u32 pairs or vec4<u32> octets), loaded as an f16 A fragment with the stride in
/// the pointer's own units, multiplied by the identity. SPIR-V lets such a load reinterpret
/// the data and naga's validator accepts the pointer; whether the driver compiles it is what
/// this asks (on the H200 a failed compile loses the device, hence one layout per process).
/// `cargo bench --bench kernels -- coop-layout LAYOUT`.
fn coop_layout(layout: &str) {
    let Some(gpu) = coop_gpu() else {
        return;
    };
    // (element type, halfs per element, how element i is built from value(j)).
    let (ty, per, build) = match layout {
        "f16" => ("f16", 1, "f16(value(i))"),
        "vec2" => ("vec2<f16>", 2, "vec2<f16>(vec2<f32>(value(2u * i), value(2u * i + 1u)))"),
        "vec4" => ("vec4<f16>", 4, "vec4<f16>(vec4<f32>(value(4u * i), value(4u * i + 1u), value(4u * i + 2u), value(4u * i + 3u)))"),
        "u32" => ("u32", 2, "pair(2u * i)"),
        "u32x4" => ("vec4<u32>", 8, "vec4<u32>(pair(8u * i), pair(8u * i + 2u), pair(8u * i + 4u), pair(8u * i + 6u))"),
        other => {
            println!("coop-layout: unknown layout '{other}' (f16, vec2, vec4, u32, u32x4)");
            return;
        }
    };
    let src = format!(
        r#"
enable f16;
enable wgpu_cooperative_matrix;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> tile: array<{ty}, {n}>;
var<workgroup> bs: array<f16, 256>;
fn value(i: u32) -> f32 {{
    return f32(i) * 0.25 - 64.0;
}}
fn pair(i: u32) -> u32 {{
    return pack2x16float(vec2<f32>(value(i), value(i + 1u)));
}}
@compute @workgroup_size(32)
fn probe(@builtin(local_invocation_index) lid: u32) {{
    for (var i = lid; i < {n}u; i += 32u) {{
        tile[i] = {build};
    }}
    for (var i = lid; i < 256u; i += 32u) {{
        bs[i] = f16(select(0.0, 1.0, i / 16u == i % 16u));
    }}
    workgroupBarrier();
    let b = coopLoad<coop_mat16x16<f16, B>>(&bs[0], 16u);
    var c: coop_mat16x16<f32, C>;
    let a = coopLoadT<coop_mat16x16<f16, A>>(&tile[0], {stride}u);
    coopStoreT(coopMultiplyAdd(a, b, c), &out[0], 16u);
}}
"#,
        n = 512 / per,
        stride = 32 / per,
    );
    let device = &gpu.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("coop-layout"),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("coop-layout"),
        layout: None,
        module: &module,
        entry_point: Some("probe"),
        compilation_options: Default::default(),
        cache: None,
    });
    let out = gpu.storage("probe.out", 256 * 4).unwrap();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("coop-layout"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: out.binding(),
        }],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    gpu.queue.submit([encoder.finish()]);
    let got = match gpu.read_f32(&out) {
        Ok(v) => v,
        Err(e) => {
            println!("{layout}: {e}");
            return;
        }
    };
    let want = (0..256).map(|i| (((i / 16) * 32 + i % 16) as f32) * 0.25 - 64.0);
    let wrong = got.iter().zip(want).filter(|&(&g, w)| g != w).count();
    println!(
        "{} ({}, {}): an f16 A fragment through array<{ty}>: {}",
        gpu.info.name,
        gpu.info.backend.to_str(),
        gpu.info.driver_info,
        if wrong == 0 {
            "the f16 values".to_string()
        } else {
            format!("{wrong} of 256 differ; row 0 reads {:?}", &got[..16])
        }
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.iter().any(|a| a == "coop-accumulation") {
        coop_accumulation();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "coop-layout") {
        coop_layout(args.get(i + 1).map_or("f16", String::as_str));
        return;
    }
    let presets: Vec<&str> = ["20b", "120b", "tiny"]
        .into_iter()
        .filter(|p| {
            if args.iter().any(|a| a.parse::<usize>().is_err()) {
                args.iter().any(|a| a == p)
            } else {
                *p != "tiny"
            }
        })
        .collect();
    let depths: Vec<usize> = {
        let d: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
        if d.is_empty() {
            vec![128, 4096, 32768]
        } else {
            d
        }
    };
    let gpu =
        Gpu::new(&GpuOptions::from_env().expect("OSS_WGPU_* variables")).expect("a GPU adapter");
    let (bandwidth, _) = measure_bandwidth(&gpu, REPS).expect("bandwidth");
    let precision = gpu.precision();
    let kv_elem = precision.kv.element_bytes();
    println!(
        "{} ({}, {} {}): bandwidth_read {bandwidth:.0} GB/s; KV {:?}, subgroups {}",
        gpu.info.name,
        gpu.info.backend.to_str(),
        gpu.info.driver,
        gpu.info.driver_info,
        precision.kv,
        precision.subgroups
    );

    for preset in presets {
        let mut c = synthetic::preset(preset).unwrap();
        // Two layers, one of each attention kind.
        c.num_hidden_layers = 2;
        c.layer_types.truncate(2);
        let model = Model::synthetic(&gpu, &c, 3).expect("synthetic weights");
        println!(
            "\ngpt-oss-{preset} shapes (2 layers: sliding, full), decode, GPU time per dispatch:"
        );
        println!(
            "  {:<34} {:>7} {:>10} {:>9} {:>7}",
            "kernel", "depth", "us", "GB/s", "% bw"
        );
        for &depth in &depths {
            let ctx = depth + 2;
            let mut fwd =
                Forward::new(&gpu, &model.weights, &c, ctx, DEFAULT_CHUNK, 2).expect("forward");
            let ids: Vec<u32> = (0..depth as u32)
                .map(|i| (i * 7919) % c.vocab_size as u32)
                .collect();
            fwd.prefill(&gpu, &model.weights, &ids, 0, false)
                .expect("prefill");
            gpu.wait("prefill").unwrap();
            let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
            for _ in 0..REPS + 1 {
                let Some(times) = fwd.profile_decode_step(&gpu, depth).expect("profile") else {
                    println!("  (no timestamp queries on this adapter)");
                    return;
                };
                // Dispatch order within a step: attention of layer 0 (sliding) comes first.
                add_step(&mut samples, times);
            }
            for ((nth, name), v) in samples {
                let us = median(v[1..].to_vec()) / 1e3;
                let window = name == "attention_decode_f32" && nth == 0;
                let label = if name == "attention_decode_f32" {
                    format!("{name} ({})", if window { "sliding" } else { "full" })
                } else if nth > 0 {
                    continue;
                } else {
                    name.clone()
                };
                match decode_bytes(&c, &name, depth, window, kv_elem) {
                    Some(bytes) => {
                        let gbs = bytes / (us * 1e3);
                        println!(
                            "  {label:<34} {depth:>7} {us:>10.1} {gbs:>9.0} {:>6.1}%",
                            100.0 * gbs / bandwidth
                        )
                    }
                    None => println!("  {label:<34} {depth:>7} {us:>10.1}"),
                }
            }
        }

        let t = 512usize;
        println!("\ngpt-oss-{preset} shapes, prefill step of {t} tokens, GPU time per dispatch:");
        println!("  {:<34} {:>10} {:>10}", "kernel", "us", "GFLOP/s");
        let mut fwd = Forward::new(&gpu, &model.weights, &c, t, DEFAULT_CHUNK, 2).expect("forward");
        let ids: Vec<u32> = (0..t as u32)
            .map(|i| (i * 7919) % c.vocab_size as u32)
            .collect();
        let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
        for _ in 0..REPS + 1 {
            let times = fwd
                .profile_prefill_step(&gpu, &model.weights, &ids)
                .expect("profile")
                .expect("timestamps");
            add_step(&mut samples, times);
        }
        for ((nth, name), v) in samples {
            let us = median(v[1..].to_vec()) / 1e3;
            let attention = name.starts_with("attention_prefill");
            let window = attention && nth == 0;
            if nth > 0 && !attention {
                continue;
            }
            let label = if attention {
                format!("{name} ({})", if window { "sliding" } else { "full" })
            } else {
                name.clone()
            };
            match prefill_flops(&c, &name, t, window) {
                Some(f) => println!("  {label:<34} {us:>10.1} {:>10.0}", f / (us * 1e3)),
                None => println!("  {label:<34} {us:>10.1}"),
            }
        }
    }
}
