//! Shared test helpers: GPU contexts on both paths, seeded random data, comparisons.
#![allow(dead_code)]

pub mod kernels;
pub mod o200k;

use oss_wgpu::gpu::{Gpu, GpuOptions, KvChoice};

/// The paths every GPU test runs: the default one (subgroups where the adapter has them, f32
/// KV cache), the same with an f16 KV cache (where the adapter has SHADER_F16), and the forced
/// portable one (no subgroups). The portable path comes last.
pub fn paths() -> Vec<Gpu> {
    let base = env_options();
    let mut v = vec![gpu_with(GpuOptions {
        portable: false,
        kv: KvChoice::F32,
        ..base.clone()
    })];
    if let Ok(g) = Gpu::new(&GpuOptions {
        portable: false,
        kv: KvChoice::F16,
        ..base.clone()
    }) {
        v.push(g);
    }
    v.push(gpu_with(GpuOptions {
        portable: true,
        kv: KvChoice::F32,
        ..base
    }));
    v
}

/// The default subgroup path with cooperative matrices asked for, where the adapter has them
/// (the kernels that use them are checked on this device only).
pub fn coop_gpu() -> Option<Gpu> {
    let gpu = gpu_with(GpuOptions {
        portable: false,
        kv: KvChoice::F32,
        coop: true,
        ..env_options()
    });
    gpu.precision().coop.then_some(gpu)
}

/// coop_gpu with an f16 KV cache: where attention_prefill_f16 runs. Asked for only where
/// the adapter has cooperative matrices (which need SHADER_F16): elsewhere an f16 cache may
/// be refused, and there is no such path to test.
pub fn coop_f16_gpu() -> Option<Gpu> {
    coop_gpu()?;
    let gpu = gpu_with(GpuOptions {
        portable: false,
        kv: KvChoice::F16,
        coop: true,
        ..env_options()
    });
    let p = gpu.precision();
    (p.coop && p.kv == KvChoice::F16).then_some(gpu)
}

pub fn env_options() -> GpuOptions {
    GpuOptions::from_env().expect("OSS_WGPU_* environment variables")
}

/// A device on the adapter the environment selects. No adapter is a failure, not a skip.
pub fn gpu_with(opts: GpuOptions) -> Gpu {
    match Gpu::new(&opts) {
        Ok(g) => g,
        Err(e) => panic!(
            "GPU tests need an adapter: {e}.\nInstall a GPU driver, or for a CPU Vulkan adapter: \
             apt-get install mesa-vulkan-drivers"
        ),
    }
}

/// The library's seeded xorshift generator (testing::writer::Rng) with the draws tests use.
pub struct Rng(oss_wgpu::testing::writer::Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(oss_wgpu::testing::writer::Rng::new(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * a
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
    pub fn vec_sym(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.sym(a)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// Largest absolute difference; panics on NaN in either input.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "NaN at index {i} of the GPU output (want {w})");
        assert!(!w.is_nan(), "NaN at index {i} of the reference");
        worst = worst.max((g - w).abs());
    }
    worst
}

/// Asserts |got - want| <= atol + rtol * |want| everywhere, naming the first failure.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "{what}: NaN at index {i} (want {w})");
        let tol = atol + rtol * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what}: index {i}: got {g}, want {w} (|diff| {} > tol {tol})",
            (g - w).abs()
        );
    }
}

/// Asserts |got - want| <= tol elementwise, naming the first failure.
pub fn assert_within(what: &str, got: &[f32], want: &[f32], tol: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    assert_eq!(tol.len(), want.len(), "{what}: tolerances");
    for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        assert!(!g.is_nan(), "{what}: NaN at index {i} (want {w})");
        assert!(
            (g - w).abs() <= t,
            "{what}: index {i}: got {g}, want {w} (|diff| {} > tol {t})",
            (g - w).abs()
        );
    }
}

/// The oss-wgpu binary: the one cargo built for these tests, else (test executables copied to a
/// machine without Rust, as `scripts/gpu-test stage DIR` lays them out in DIR/tests) DIR/bin's.
pub fn oss_wgpu_bin() -> std::path::PathBuf {
    let built = std::path::PathBuf::from(env!("CARGO_BIN_EXE_oss-wgpu"));
    if built.exists() {
        return built;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("bin").join("oss-wgpu")))
        .filter(|p| p.exists())
        .unwrap_or(built)
}

/// A path in the repository: under the build-time checkout when it exists, else relative to
/// the working directory (test binaries copied to another machine run from the repo root).
pub fn repo_path(rel: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if built.exists() {
        built
    } else {
        std::path::PathBuf::from(rel)
    }
}
