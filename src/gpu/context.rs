//! Adapter choice, device creation and the features and limits in use.
//!
//! Every subcommand goes through [`Gpu::new`]: the backend and adapter switches, the forced
//! portable path, the lowered binding limit and the OSS_WGPU_TUNE_* switches all apply here, so
//! the kernels only ever ask [`Gpu::precision`], [`Gpu::tuning`], [`Gpu::features`] and
//! [`Gpu::limits`].

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, Result};

/// Which graphics API to run on. `Auto` tries every compiled backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    pub const NAMES: &'static str = "auto, vulkan, metal, dx12, gl";

    pub fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Auto => wgpu::Backends::all(),
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }
}

impl FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" | "mtl" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            other => Err(Error::argument(
                "--backend",
                format!("unknown backend '{other}'; choose one of {}", Self::NAMES),
            )),
        }
    }
}

/// How the KV cache stores keys and values. f32 by default: f16 halves the cache, but its
/// rounding of K and V (up to 2^-12 relative) is enough, in gpt-oss, to flip a near-tied
/// router choice now and then, and a flipped expert changes that token's hidden state and
/// every later token that attends to it; with an f32 cache the GPU computes what the
/// reference computes (see tests/real_shape.rs). f16 is for long contexts on small memories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvChoice {
    #[default]
    F32,
    F16,
}

impl KvChoice {
    pub const NAMES: &'static str = "f32, f16";
}

impl FromStr for KvChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "" => Ok(KvChoice::F32),
            "f16" => Ok(KvChoice::F16),
            other => Err(Error::argument(
                "--kv",
                format!(
                    "unknown KV cache type '{other}'; choose one of {}",
                    Self::NAMES
                ),
            )),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Metal => "metal",
            BackendChoice::Dx12 => "dx12",
            BackendChoice::Gl => "gl",
        };
        f.write_str(s)
    }
}

/// The switches every subcommand shares (CLI flags, or the OSS_WGPU_* environment variables).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: BackendChoice,
    /// An index into the adapter list of `oss-wgpu info`, or a case-insensitive name substring.
    pub adapter: Option<String>,
    /// No subgroups: plain WGSL that every adapter runs.
    pub portable: bool,
    /// The KV cache's element type.
    pub kv: KvChoice,
    /// Lowers max_storage_buffer_binding_size (and so where tensors are split).
    pub max_binding_bytes: Option<u64>,
    /// Compile shaders with wgpu's runtime checks (bounds checks, loop bounding); for
    /// debugging a kernel, at a cost in speed.
    pub shader_checks: bool,
    /// Run the prefill matmuls on cooperative matrices where the adapter has them
    /// (OSS_WGPU_COOP=on). Off by default: at gpt-oss-20b's widths this path misses the
    /// real-shape test's f32 bound by up to 25% (BENCHMARKS.md change 9).
    pub coop: bool,
}

impl GpuOptions {
    /// Options from OSS_WGPU_BACKEND, OSS_WGPU_ADAPTER, OSS_WGPU_PORTABLE, OSS_WGPU_KV,
    /// OSS_WGPU_MAX_BINDING, OSS_WGPU_SHADER_CHECKS.
    pub fn from_env() -> Result<Self> {
        let mut opts = GpuOptions::default();
        if let Ok(b) = std::env::var("OSS_WGPU_BACKEND") {
            opts.backend = b.parse()?;
        }
        if let Ok(a) = std::env::var("OSS_WGPU_ADAPTER") {
            if !a.trim().is_empty() {
                opts.adapter = Some(a);
            }
        }
        if let Ok(p) = std::env::var("OSS_WGPU_PORTABLE") {
            opts.portable = matches!(p.trim(), "1" | "true" | "yes" | "on");
        }
        if let Ok(k) = std::env::var("OSS_WGPU_KV") {
            opts.kv = k.parse().map_err(|_| {
                Error::argument(
                    "OSS_WGPU_KV",
                    format!("'{k}' is not one of {}", KvChoice::NAMES),
                )
            })?;
        }
        if let Ok(p) = std::env::var("OSS_WGPU_COOP") {
            opts.coop = matches!(p.trim(), "1" | "true" | "yes" | "on");
        }
        if let Ok(p) = std::env::var("OSS_WGPU_SHADER_CHECKS") {
            opts.shader_checks = matches!(p.trim(), "1" | "true" | "yes" | "on");
        }
        if let Ok(m) = std::env::var("OSS_WGPU_MAX_BINDING") {
            opts.max_binding_bytes = Some(parse_bytes(&m).ok_or_else(|| {
                Error::argument("OSS_WGPU_MAX_BINDING", format!("'{m}' is not a byte count"))
            })?);
        }
        Ok(opts)
    }
}

/// Parses "134217728", "128MiB", "128M", "2GiB".
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// What the kernels compute with on this device, decided once when it opens: the shader
/// composer picks its module variants from it and the kernels size the KV cache by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precision {
    /// The KV cache's element type (f16 only where it was asked for and SHADER_F16 granted).
    pub kv: KvChoice,
    /// Subgroup reductions are used (the adapter has them and the path is not portable).
    pub subgroups: bool,
    /// The prefill matmuls run on cooperative matrices (tensor cores): f16 operands, f32
    /// accumulation. Only where asked for (GpuOptions::coop), the driver offers 16x16x16
    /// f16 x f16 -> f32, subgroups are in use at one fixed size, and the path is not
    /// portable.
    pub coop: bool,
    /// The MoE decode kernels and the cooperative-matrix expert tiles decode E2M1 pairs into
    /// f16 bits with unpack2x16float (the adapter's DownlevelFlags::SHADER_F16_IN_F32), not
    /// through a table in workgroup memory: not on the portable path, nor with
    /// OSS_WGPU_TUNE_MOE=lut.
    pub f16_bits: bool,
}

/// Kernel splits for experiments, read once when the device opens from
/// OSS_WGPU_TUNE_MATVEC="ROWS,R", OSS_WGPU_TUNE_MOE=global,lut (either or both),
/// OSS_WGPU_TUNE_MOE_R, OSS_WGPU_TUNE_MOE_ROWS="N" or "GATE_UP,DOWN",
/// OSS_WGPU_TUNE_PREFETCH=off and OSS_WGPU_TUNE_ROUTER=split; the defaults are what ships.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// matvec_f32_bf16w: (rows per workgroup, rows a group takes at once) for every matrix.
    pub matvec: Option<(u32, u32)>,
    /// The MoE decode kernels read activations from global memory, not a workgroup tile.
    pub moe_x_global: bool,
    /// The MoE kernels look E2M1 values up in a workgroup-memory table (as the portable path
    /// does) instead of decoding pairs into f16 bits (OSS_WGPU_TUNE_MOE=lut).
    pub moe_lut: bool,
    /// Rows a group of the MoE decode kernels takes at once: 2, 4 or 8 (OSS_WGPU_TUNE_MOE_R).
    pub moe_r: Option<u32>,
    /// With cooperative matrices on, only the expert matmuls (`Some(true)`,
    /// OSS_WGPU_TUNE_COOP=moe) or only the bf16 matmuls (`Some(false)`, =dense) use them.
    pub coop_moe_only: Option<bool>,
    /// Output rows per workgroup of (moe_gate_up_f32_mf4w, moe_down_f32_mf4w), each a
    /// multiple of 4 in 4..=256; each kernel also asks for a multiple of its rows per group
    /// step (gate_up 8, down 4, or OSS_WGPU_TUNE_MOE_R) and says so otherwise.
    pub moe_rows: Option<(u32, u32)>,
    /// Decode attention does not prefetch o_proj's weights (OSS_WGPU_TUNE_PREFETCH=off).
    pub no_prefetch: bool,
    /// The decode router ranks its logits in a dispatch of its own (OSS_WGPU_TUNE_ROUTER=split).
    pub router_split: bool,
}

impl Tuning {
    /// An unparsable OSS_WGPU_TUNE_MATVEC, OSS_WGPU_TUNE_MOE_R or OSS_WGPU_TUNE_MOE_ROWS is
    /// ignored: these are experiment switches, not options.
    pub fn from_env() -> Self {
        let matvec = std::env::var("OSS_WGPU_TUNE_MATVEC").ok().and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        });
        Tuning {
            matvec,
            moe_x_global: moe_switch("global"),
            moe_lut: moe_switch("lut"),
            moe_r: std::env::var("OSS_WGPU_TUNE_MOE_R")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| [2, 4, 8].contains(n)),
            coop_moe_only: match std::env::var("OSS_WGPU_TUNE_COOP")
                .as_deref()
                .map(str::trim)
            {
                Ok("moe") => Some(true),
                Ok("dense") => Some(false),
                _ => None,
            },
            moe_rows: std::env::var("OSS_WGPU_TUNE_MOE_ROWS")
                .ok()
                .and_then(|v| parse_moe_rows(&v)),
            no_prefetch: std::env::var("OSS_WGPU_TUNE_PREFETCH").is_ok_and(|v| v.trim() == "off"),
            router_split: std::env::var("OSS_WGPU_TUNE_ROUTER").is_ok_and(|v| v.trim() == "split"),
        }
    }
}

/// Whether the comma-separated OSS_WGPU_TUNE_MOE names `switch`.
fn moe_switch(switch: &str) -> bool {
    std::env::var("OSS_WGPU_TUNE_MOE").is_ok_and(|v| v.split(',').any(|s| s.trim() == switch))
}

/// "N" (both kernels) or "GATE_UP,DOWN", each a multiple of 4 in 4..=256; None otherwise.
fn parse_moe_rows(v: &str) -> Option<(u32, u32)> {
    let rows = |s: &str| {
        let n: u32 = s.trim().parse().ok()?;
        (n % 4 == 0 && (4..=256).contains(&n)).then_some(n)
    };
    match v.split_once(',') {
        Some((g, d)) => Some((rows(g)?, rows(d)?)),
        None => rows(v).map(|n| (n, n)),
    }
}

impl KvChoice {
    /// Bytes per KV-cache element.
    pub const fn element_bytes(self) -> u64 {
        match self {
            KvChoice::F32 => 4,
            KvChoice::F16 => 2,
        }
    }
}

/// The optional features a kernel may use, as granted on this device.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct GpuFeatures {
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Timestamp queries at pass boundaries.
    pub timestamps: bool,
}

/// What `oss-wgpu info` prints about one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    pub index: usize,
    pub name: String,
    pub vendor: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub backend: String,
    pub shader_f16: bool,
    pub subgroup: bool,
    pub timestamp_query: bool,
    pub cooperative_matrix: bool,
    /// The cooperative-matrix configurations the driver offers ("MxNxK AB->C"): what a
    /// tensor-core kernel must choose from, since nothing checks a shader against them.
    pub cooperative_matrix_shapes: Vec<String>,
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// The adapter that automatic selection picks.
    pub auto_selected: bool,
}

pub fn vendor_name(id: u32) -> &'static str {
    match id {
        0x10de => "NVIDIA",
        0x1002 => "AMD",
        0x8086 => "Intel",
        0x106b => "Apple",
        0x13b5 => "ARM",
        0x5143 => "Qualcomm",
        0x1414 => "Microsoft",
        0x10005 => "Mesa",
        _ => "unknown",
    }
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    }
}

/// Auto-selection preference: discrete, then integrated, then virtual, then CPU.
fn preference(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn new_instance(backend: BackendChoice) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.backends();
    wgpu::Instance::new(desc)
}

/// Every adapter of the chosen backend(s), in a stable order (backend, then enumeration order).
pub fn enumerate_adapters(backend: BackendChoice) -> Vec<wgpu::Adapter> {
    let instance = new_instance(backend);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backend.backends()));
    // Vulkan first: it is the best-tested path; within a backend keep the driver's order.
    adapters.sort_by_key(|a| backend_order(a.get_info().backend));
    adapters
}

fn backend_order(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    }
}

/// The index that automatic selection picks among `adapters`.
pub fn auto_index(adapters: &[wgpu::Adapter]) -> Option<usize> {
    (0..adapters.len()).min_by_key(|&i| {
        let info = adapters[i].get_info();
        (preference(info.device_type), backend_order(info.backend), i)
    })
}

pub fn adapter_report(index: usize, adapter: &wgpu::Adapter, auto: bool) -> AdapterReport {
    let info = adapter.get_info();
    let features = adapter.features();
    let limits = adapter.limits();
    AdapterReport {
        index,
        name: info.name.clone(),
        vendor: format!("{} (0x{:04x})", vendor_name(info.vendor), info.vendor),
        device_type: device_type_name(info.device_type).to_string(),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        backend: info.backend.to_str().to_string(),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        subgroup: features.contains(wgpu::Features::SUBGROUP),
        timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        cooperative_matrix: features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        cooperative_matrix_shapes: (adapter.cooperative_matrix_properties().iter())
            .map(|p| {
                let sat = if p.saturating_accumulation {
                    " saturating"
                } else {
                    ""
                };
                let (m, n, k) = (p.m_size, p.n_size, p.k_size);
                format!("{m}x{n}x{k} {:?}->{:?}{sat}", p.ab_type, p.cr_type)
            })
            .collect(),
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        auto_selected: auto,
    }
}

/// Reports for every adapter of the chosen backend(s), the auto-selected one marked.
pub fn adapter_reports(backend: BackendChoice) -> Vec<AdapterReport> {
    let adapters = enumerate_adapters(backend);
    let auto = auto_index(&adapters);
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| adapter_report(i, a, Some(i) == auto))
        .collect()
}

fn describe(adapters: &[wgpu::Adapter]) -> String {
    if adapters.is_empty() {
        return "none".to_string();
    }
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            format!("[{i}] {} ({})", info.name, info.backend.to_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_adapter_hint() -> &'static str {
    "install a GPU driver, or for a CPU Vulkan adapter: apt-get install mesa-vulkan-drivers"
}

/// Picks the adapter that `opts` names, or the auto choice.
pub fn select_adapter(opts: &GpuOptions) -> Result<wgpu::Adapter> {
    let mut adapters = enumerate_adapters(opts.backend);
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!(
            "no adapter found for backend '{}'; {}",
            opts.backend,
            no_adapter_hint()
        )));
    }
    let index = match &opts.adapter {
        None => auto_index(&adapters).expect("adapters is not empty"),
        Some(want) => {
            let want = want.trim();
            if let Ok(i) = want.parse::<usize>() {
                if i >= adapters.len() {
                    return Err(Error::argument(
                        "--adapter",
                        format!(
                            "index {i} is out of range; adapters: {}",
                            describe(&adapters)
                        ),
                    ));
                }
                i
            } else {
                let lower = want.to_ascii_lowercase();
                let hits: Vec<usize> = (0..adapters.len())
                    .filter(|&i| {
                        adapters[i]
                            .get_info()
                            .name
                            .to_ascii_lowercase()
                            .contains(&lower)
                    })
                    .collect();
                match hits.as_slice() {
                    [] => {
                        return Err(Error::argument(
                            "--adapter",
                            format!(
                                "no adapter name contains '{want}'; adapters: {}",
                                describe(&adapters)
                            ),
                        ))
                    }
                    // Several matches (the same card on two backends): the auto order decides.
                    _ => *hits
                        .iter()
                        .min_by_key(|&&i| {
                            let info = adapters[i].get_info();
                            (preference(info.device_type), backend_order(info.backend), i)
                        })
                        .expect("hits is not empty"),
                }
            }
        }
    };
    Ok(adapters.swap_remove(index))
}

/// Whether the cooperative-matrix prefill kernels can run on `adapter`: the features they
/// need, the one configuration they use (16x16x16, f16 inputs, f32 accumulator; nothing in
/// wgpu checks a shader against the driver's list), and one fixed subgroup size, since a
/// workgroup is 8 subgroups (of at least 32, for its loads).
fn coop_usable(adapter: &wgpu::Adapter) -> bool {
    use wgpu::CooperativeScalarType as T;
    let needed = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    let info = adapter.get_info();
    let shape = adapter.cooperative_matrix_properties().iter().any(|p| {
        (p.m_size, p.n_size, p.k_size) == (16, 16, 16) && p.ab_type == T::F16 && p.cr_type == T::F32
    });
    adapter.features().contains(needed)
        && shape
        && info.subgroup_min_size == info.subgroup_max_size
        && info.subgroup_max_size >= 32
}

/// Errors wgpu reports outside any scope, kept until the next [`Gpu::check`].
#[derive(Default)]
struct ErrorSink {
    errors: Mutex<Vec<String>>,
    lost: Mutex<Option<String>>,
}

/// The device, its queue and what it may use.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    features: GpuFeatures,
    precision: Precision,
    tuning: Tuning,
    limits: wgpu::Limits,
    sink: Arc<ErrorSink>,
    pub(crate) cache: crate::gpu::PipelineCache,
    /// Compiled pipelines kept on disk between runs, where the backend has a pipeline cache.
    pub(crate) disk_cache: Option<crate::gpu::disk_cache::DiskCache>,
    dummies: [std::sync::OnceLock<crate::gpu::GpuBuffer>; 4],
    /// Bytes of storage buffers created so far (buffers are never freed while a model runs,
    /// so this is also the peak).
    pub(crate) allocated: std::sync::atomic::AtomicU64,
    pub options: GpuOptions,
}

impl Gpu {
    /// Opens the adapter `opts` selects with the adapter's own limits and the optional features
    /// it has (no subgroups on the portable path; SHADER_F16 only for an f16 KV cache).
    pub fn new(opts: &GpuOptions) -> Result<Self> {
        let adapter = select_adapter(opts)?;
        Self::from_adapter(adapter, opts)
    }

    pub fn from_adapter(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Self> {
        let info = adapter.get_info();
        let have = adapter.features();
        let mut want = wgpu::Features::empty();
        if !opts.portable {
            want |= have & wgpu::Features::SUBGROUP;
        }
        let coop = opts.coop && !opts.portable && coop_usable(&adapter);
        if coop {
            want |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16;
        }
        let f16_kv = match opts.kv {
            KvChoice::F32 => false,
            KvChoice::F16 if have.contains(wgpu::Features::SHADER_F16) => true,
            KvChoice::F16 => {
                return Err(Error::argument(
                    "--kv",
                    format!(
                        "f16 needs SHADER_F16, which {} ({}) does not have; use --kv f32",
                        info.name,
                        info.backend.to_str()
                    ),
                ))
            }
        };
        if f16_kv {
            want |= wgpu::Features::SHADER_F16;
        }
        want |= have
            & (wgpu::Features::PIPELINE_CACHE
                | wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

        let mut limits = adapter.limits();
        if let Some(max) = opts.max_binding_bytes {
            if max < 1 << 20 {
                return Err(Error::argument(
                    "--max-binding-bytes",
                    format!("{max} is below the 1 MiB that any kernel needs"),
                ));
            }
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(max);
        }

        let desc = wgpu::DeviceDescriptor {
            label: Some("oss-wgpu"),
            required_features: want,
            required_limits: limits.clone(),
            experimental_features: if coop {
                // SAFETY: wgpu asks callers of experimental features to accept that its
                // implementation may have bugs; the cooperative-matrix kernels are checked
                // against the CPU references on the devices that run them (tests/prefill.rs).
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            },
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: format!("{} ({})", info.name, info.backend.to_str()),
                message: e.to_string(),
            }
        })?;

        let sink = Arc::new(ErrorSink::default());
        {
            let sink = sink.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut v) = sink.errors.lock() {
                    v.push(e.to_string());
                }
            }));
        }
        {
            let sink = sink.clone();
            device.set_device_lost_callback(move |reason, message| {
                if let Ok(mut l) = sink.lost.lock() {
                    *l = Some(format!("{reason:?}: {message}"));
                }
            });
        }

        let granted = device.features();
        let tuning = Tuning::from_env();
        let precision = Precision {
            kv: if f16_kv { KvChoice::F16 } else { KvChoice::F32 },
            subgroups: granted.contains(wgpu::Features::SUBGROUP),
            coop: granted.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
            f16_bits: !opts.portable
                && !tuning.moe_lut
                && adapter
                    .get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32),
        };
        let features = GpuFeatures {
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            timestamps: granted.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        log::info!(
            "adapter: {} ({}, {}), f16 KV {}, subgroups {} (size {}..{}), cooperative matrices {}, MXFP4 decode by f16 bits {}, timestamps {}, max binding {} B",
            info.name,
            info.backend.to_str(),
            info.driver,
            precision.kv == KvChoice::F16,
            precision.subgroups,
            features.subgroup_min_size,
            features.subgroup_max_size,
            precision.coop,
            precision.f16_bits,
            features.timestamps,
            limits.max_storage_buffer_binding_size
        );
        let disk_cache = crate::gpu::disk_cache::open(&device, &info);
        Ok(Gpu {
            disk_cache,
            device,
            queue,
            info,
            features,
            precision,
            tuning,
            limits,
            sink,
            cache: Default::default(),
            dummies: Default::default(),
            allocated: Default::default(),
            options: opts.clone(),
        })
    }

    /// A small zeroed buffer for bindings a kernel variant declares but does not use. Slot 0
    /// serves any number of read-only bindings; each writable binding of one dispatch needs a
    /// slot of its own (1 to 3), since a buffer may not be bound writable twice.
    pub fn dummy(&self, slot: usize) -> Result<&crate::gpu::GpuBuffer> {
        let cell = &self.dummies[slot.min(self.dummies.len() - 1)];
        if let Some(d) = cell.get() {
            return Ok(d);
        }
        let d = self.storage(&format!("unused.{slot}"), 256)?;
        Ok(cell.get_or_init(|| d))
    }

    /// Bytes of storage buffers this device has allocated (weights, KV cache, activations).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn features(&self) -> GpuFeatures {
        self.features
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The largest storage binding, and so the largest piece a weight tensor is split into.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    pub fn max_buffer(&self) -> u64 {
        self.limits.max_buffer_size
    }

    pub fn adapter_name(&self) -> String {
        format!("{} ({})", self.info.name, self.info.backend.to_str())
    }

    /// Runs `f` inside validation and out-of-memory error scopes; an error names `label`.
    pub fn scoped<T>(&self, label: &str, bytes: u64, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        let internal = pollster::block_on(internal.pop());
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if oom.is_some() {
            return Err(Error::GpuOutOfMemory {
                label: label.to_string(),
                bytes,
            });
        }
        if let Some(e) = validation {
            return Err(Error::GpuValidation {
                label: label.to_string(),
                message: error_text(&e),
            });
        }
        if let Some(e) = internal {
            return Err(Error::GpuInternal {
                label: label.to_string(),
                message: error_text(&e),
            });
        }
        Ok(out)
    }

    /// Surfaces errors that happened outside a scope (in a submit, say) and a lost device.
    pub fn check(&self, context: &str) -> Result<()> {
        if let Ok(lost) = self.sink.lost.lock() {
            if let Some(l) = lost.as_ref() {
                return Err(Error::DeviceLost(l.clone()));
            }
        }
        if let Ok(mut errors) = self.sink.errors.lock() {
            if !errors.is_empty() {
                let message = errors.join("\n");
                errors.clear();
                return Err(Error::GpuValidation {
                    label: context.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// Blocks until the queue is idle, then reports errors.
    pub fn wait(&self, context: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::GpuInternal {
                label: context.to_string(),
                message: e.to_string(),
            })?;
        self.check(context)
    }
}

/// wgpu's error text with its source chain, which is where the label and the cause are.
fn error_text(e: &wgpu::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
