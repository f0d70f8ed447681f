//! Compute pipelines, created once per (shader, entry point, override constants) and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::shader::{self, ShaderVariant};
use crate::gpu::Gpu;

/// One compiled kernel. Bindings are all in group 0, in the shader's binding order.
#[derive(Clone)]
pub struct Pipeline {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub label: String,
}

type Key = (String, String, Vec<(String, u64)>);

/// Caches pipelines and shader modules for one device.
#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<String, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<Key, Pipeline>>,
}

impl Gpu {
    /// The shader variant this device runs (subgroups or not, f16 KV cache or not).
    pub fn variant(&self) -> ShaderVariant {
        self.precision().into()
    }

    fn module(&self, name: &str) -> Result<Arc<wgpu::ShaderModule>> {
        let mut modules = self.cache.modules.lock().expect("pipeline cache poisoned");
        if let Some(m) = modules.get(name) {
            return Ok(m.clone());
        }
        let source =
            shader::compose(name, self.variant()).map_err(|message| Error::GpuValidation {
                label: format!("{name}.wgsl"),
                message,
            })?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = self.scoped(&format!("{name}.wgsl"), 0, || {
            if self.options.shader_checks {
                self.device.create_shader_module(desc)
            } else {
                // SAFETY: our shaders are fixed, validated by naga and tested against CPU
                // references; every loop has a bounded trip count, so naga's loop counters
                // (which keep drivers from unrolling and pipelining) are not needed, and
                // out-of-range accesses stay bounded by the driver's own robust buffer access
                // where the backend provides it.
                unsafe {
                    self.device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            }
        })?;
        let module = Arc::new(module);
        modules.insert(name.to_string(), module.clone());
        Ok(module)
    }

    /// The pipeline for entry point `entry` of `shader` with `constants` as override values.
    pub fn pipeline(
        &self,
        shader: &str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Pipeline> {
        let key: Key = (
            shader.to_string(),
            entry.to_string(),
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        if let Some(p) = self
            .cache
            .pipelines
            .lock()
            .expect("pipeline cache poisoned")
            .get(&key)
        {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let label = if constants.is_empty() {
            format!("{shader}::{entry}")
        } else {
            let c: Vec<String> = constants.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{shader}::{entry}[{}]", c.join(","))
        };
        let pipeline = self.scoped(&label, 0, || {
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        // Every kernel writes its workgroup memory before reading it.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: self.disk_cache.as_ref().map(|d| &d.cache),
                })
        })?;
        let p = Pipeline {
            pipeline: Arc::new(pipeline),
            label,
        };
        self.cache
            .pipelines
            .lock()
            .expect("pipeline cache poisoned")
            .insert(key, p.clone());
        Ok(p)
    }

    /// A bind group for `pipeline` with `resources` at bindings 0, 1, 2, ... of group 0.
    pub fn bind(
        &self,
        pipeline: &Pipeline,
        label: &str,
        resources: &[wgpu::BindingResource<'_>],
    ) -> Result<wgpu::BindGroup> {
        let layout = pipeline.pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        let label = format!("{} <- {label}", pipeline.label);
        self.scoped(&label, 0, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &layout,
                entries: &entries,
            })
        })
    }
}

/// One recorded dispatch: a pipeline, its bind group and the grid.
pub struct Dispatch {
    pub pipeline: Pipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// What it works on (the weight or output buffer's label), for profiles.
    pub target: String,
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

impl Gpu {
    /// A command encoder holding one compute pass that `record` fills; the caller may add
    /// copies before submitting it.
    pub fn encode_pass(
        &self,
        label: &str,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            record(&mut pass);
        }
        encoder
    }

    /// Records `dispatches` into one compute pass, submits, and waits (tests and one-off work).
    pub fn run(&self, label: &str, dispatches: &[&Dispatch]) -> Result<()> {
        let encoder = self.encode_pass(label, |pass| {
            for d in dispatches {
                d.record(pass);
            }
        });
        self.queue.submit([encoder.finish()]);
        self.wait(label)
    }

    /// Splits a 1-D count of workgroups into a grid within the per-dimension limit.
    pub fn grid(&self, workgroups: u32) -> [u32; 3] {
        let max = self.limits().max_compute_workgroups_per_dimension.max(1);
        if workgroups <= max {
            [workgroups.max(1), 1, 1]
        } else {
            let y = workgroups.div_ceil(max);
            [workgroups.div_ceil(y), y, 1]
        }
    }
}
