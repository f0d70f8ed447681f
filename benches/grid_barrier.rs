//! What a grid-wide barrier built from storage atomics costs, against a dispatch boundary,
//! and whether plain stores made before it are visible to other workgroups after it: the two
//! facts a persistent decode kernel (issue [decode]) would rest on. Not a kernel of the
//! engine; its shader is benches/grid_barrier.wgsl.
//!
//!   cargo bench --bench grid_barrier                 # 132 and 264 workgroups
//!   cargo bench --bench grid_barrier -- 132 1000     # workgroups, rounds
//!
//! Every workgroup must be resident at once, or the spin never ends: keep the count at or
//! under the multiprocessors times what one holds (64 invocations, no workgroup memory). On a
//! CPU adapter (lavapipe: a few threads) that does not hold, and its numbers mean nothing.

use std::time::Instant;

use oss_wgpu::gpu::{Gpu, GpuOptions};
use wgpu::util::DeviceExt;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rounds: u32,
    n_wg: u32,
    atomic_read: u32,
    _pad: u32,
}

struct Probe<'a> {
    gpu: &'a Gpu,
    rounds_pipe: wgpu::ComputePipeline,
    dispatch_pipe: wgpu::ComputePipeline,
}

impl Probe<'_> {
    fn buffers(&self, n_wg: u32) -> [wgpu::Buffer; 4] {
        let dev = &self.gpu.device;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let zeros = |label: &str, words: usize| {
            dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&vec![0u32; words]),
                usage,
            })
        };
        [
            zeros("arrived", 4),
            zeros("words", n_wg as usize * 64),
            zeros("stale", 4),
            zeros("words_a", n_wg as usize * 64),
        ]
    }

    fn params(&self, p: Params) -> wgpu::Buffer {
        self.gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&p),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn read_word(&self, buf: &wgpu::Buffer) -> u32 {
        let dev = &self.gpu.device;
        let staging = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = dev.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, 4);
        self.gpu.queue.submit([enc.finish()]);
        staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        self.gpu.wait("readback").expect("readback");
        let view = staging.slice(..).get_mapped_range().expect("mapped");
        bytemuck::pod_read_unaligned(&view[..4])
    }

    /// Seconds for `dispatches` dispatches of `pipe` over `n_wg` workgroups in one pass, with
    /// `bindings` (binding number, buffer).
    fn time(
        &self,
        pipe: &wgpu::ComputePipeline,
        bindings: &[(u32, &wgpu::Buffer)],
        n_wg: u32,
        dispatches: u32,
    ) -> f64 {
        let dev = &self.gpu.device;
        let entries: Vec<_> = bindings
            .iter()
            .map(|&(binding, b)| wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("grid_barrier"),
            layout: &pipe.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, &bind, &[]);
            for _ in 0..dispatches {
                pass.dispatch_workgroups(n_wg, 1, 1);
            }
        }
        let start = Instant::now();
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.wait("grid_barrier").expect("grid_barrier");
        start.elapsed().as_secs_f64()
    }

    /// Seconds a round and stale words seen, for `rounds` rounds in one dispatch.
    fn in_kernel(&self, n_wg: u32, rounds: u32, atomic_read: bool) -> (f64, u32) {
        let [arrived, words, stale, words_a] = self.buffers(n_wg);
        let params = self.params(Params {
            rounds,
            n_wg,
            atomic_read: atomic_read as u32,
            _pad: 0,
        });
        let bindings = [
            (0, &params),
            (1, &arrived),
            (2, &words),
            (3, &stale),
            (4, &words_a),
        ];
        let secs = self.time(&self.rounds_pipe, &bindings, n_wg, 1);
        (secs / rounds.max(1) as f64, self.read_word(&stale))
    }

    /// The same rounds as one dispatch each, in one pass.
    fn as_dispatches(&self, n_wg: u32, rounds: u32) -> (f64, u32) {
        let [_, words, stale, _] = self.buffers(n_wg);
        let params = self.params(Params {
            rounds,
            n_wg,
            atomic_read: 0,
            _pad: 0,
        });
        let bindings = [(0, &params), (2, &words), (3, &stale)];
        let secs = self.time(&self.dispatch_pipe, &bindings, n_wg, rounds);
        (secs / rounds.max(1) as f64, self.read_word(&stale))
    }
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if args.is_empty() {
        vec![132, 264]
    } else {
        vec![args[0]]
    };
    let rounds = args.get(1).copied().unwrap_or(2000);
    let gpu =
        Gpu::new(&GpuOptions::from_env().expect("OSS_WGPU_* variables")).expect("a GPU adapter");
    println!(
        "{} ({}, {} {})",
        gpu.info.name,
        gpu.info.backend.to_str(),
        gpu.info.driver,
        gpu.info.driver_info
    );
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("grid_barrier"),
            source: wgpu::ShaderSource::Wgsl(include_str!("grid_barrier.wgsl").into()),
        });
    let pipe = |entry: &str| {
        gpu.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    };
    let probe = Probe {
        gpu: &gpu,
        rounds_pipe: pipe("barrier_rounds"),
        dispatch_pipe: pipe("dispatch_round"),
    };
    println!(
        "  {:>10} {:>7} {:>28} {:>12}",
        "workgroups", "rounds", "barrier", "us a round, stale words"
    );
    for &n in &counts {
        // Warm-up (pipeline creation, clocks).
        probe.in_kernel(n, rounds / 10, false);
        probe.as_dispatches(n, rounds / 10);
        for _ in 0..2 {
            let (t, s) = probe.in_kernel(n, rounds, false);
            println!(
                "  {n:>10} {rounds:>7} {:>28} {:>8.2} {s}",
                "atomics, plain reads",
                t * 1e6
            );
            let (t, s) = probe.in_kernel(n, rounds, true);
            println!(
                "  {n:>10} {rounds:>7} {:>28} {:>8.2} {s}",
                "atomics, atomic reads",
                t * 1e6
            );
            let (t, s) = probe.as_dispatches(n, rounds);
            println!(
                "  {n:>10} {rounds:>7} {:>28} {:>8.2} {s}",
                "a dispatch a round",
                t * 1e6
            );
        }
    }
}
