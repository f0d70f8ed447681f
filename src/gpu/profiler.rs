//! GPU timestamps around compute passes, for benchmarks and per-kernel profiles. Needs
//! TIMESTAMP_QUERY; callers fall back to wall-clock time without it.

use crate::error::Result;
use crate::gpu::Gpu;

pub struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    capacity: u32,
}

impl Profiler {
    /// Room for `passes` timed passes; None when the device has no timestamp queries.
    pub fn new(gpu: &Gpu, passes: u32) -> Option<Profiler> {
        if !gpu.features().timestamps {
            return None;
        }
        let count = 2 * passes;
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profiler"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = count as u64 * 8;
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profiler.resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profiler.staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Some(Profiler {
            queries,
            resolve,
            staging,
            capacity: passes,
        })
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Timestamp writes for timed pass `i` (its start and end).
    pub fn pass(&self, i: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Records the resolve of the first `n` passes' timestamps; submit, then [`read`](Self::read).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder, n: u32) {
        encoder.resolve_query_set(&self.queries, 0..2 * n, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.staging, 0, 2 * n as u64 * 8);
    }

    /// Durations in nanoseconds of the first `n` passes (waits for the queue).
    pub fn read(&self, gpu: &Gpu, n: u32) -> Result<Vec<f64>> {
        let data = gpu.map_read(&self.staging, "profiler")?;
        let ticks: &[u64] = bytemuck::cast_slice(&data[..2 * n as usize * 8]);
        let period = gpu.queue.get_timestamp_period() as f64;
        Ok(ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * period)
            .collect())
    }
}
