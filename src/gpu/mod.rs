//! Everything GPU that is not model-specific: adapter and device, buffers, shaders, pipelines.

mod buffer;
mod context;
pub mod disk_cache;
mod pipeline;
pub mod profiler;
pub mod shader;

pub use buffer::GpuBuffer;
pub use context::{
    adapter_report, adapter_reports, auto_index, enumerate_adapters, parse_bytes, select_adapter,
    vendor_name, AdapterReport, BackendChoice, Gpu, GpuFeatures, GpuOptions, KvChoice, Precision,
    Tuning,
};
pub use pipeline::{Dispatch, Pipeline, PipelineCache};
pub use profiler::Profiler;
pub use shader::ShaderVariant;
