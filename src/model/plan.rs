//! A plan: the dispatches of one step of the model, built once and recorded many times.
//!
//! Decode records its plan for every token, prefill caches one plan per step size, and the
//! profiler times the same plans dispatch by dispatch, so all three run exactly the same work.
//! Each op carries its grid rule: fixed when built, or a function of the step's position
//! (attention over a cache that grows with every decoded token; an empty grid leaves the op out
//! at that position). Prefill needs no third rule:
//! its kernels take the token count in their parameters, so a step size is a plan of its own.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Profiler};

/// How an op's workgroup grid is found when it is recorded.
pub enum Grid {
    /// The grid the dispatch was built with.
    Fixed,
    /// Computed from the step's position.
    PerPosition(Box<dyn Fn(u32) -> [u32; 3] + Send + Sync>),
}

/// One dispatch of a plan, with its grid rule and the name its time is reported under.
pub struct Op {
    pub dispatch: Dispatch,
    pub grid: Grid,
    /// The kernel, and for matrix products which matrix ("matvec_f32_bf16w qkv_proj"), so
    /// that a profile adds up per kernel and matrix over layers and parts.
    pub name: String,
}

impl Op {
    pub fn grid_at(&self, pos: u32) -> [u32; 3] {
        match &self.grid {
            Grid::Fixed => self.dispatch.workgroups,
            Grid::PerPosition(f) => f(pos),
        }
    }

    /// Records this op into `pass` for a step at position `pos`; an empty grid records
    /// nothing (an op not needed at this position), so that it costs no barrier either.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, pos: u32) {
        let [x, y, z] = self.grid_at(pos);
        if x == 0 || y == 0 || z == 0 {
            return;
        }
        pass.set_pipeline(&self.dispatch.pipeline.pipeline);
        pass.set_bind_group(0, &self.dispatch.bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}

/// The kernel a dispatch runs: its pipeline's label up to "::".
fn kernel_name(d: &Dispatch) -> &str {
    d.pipeline.label.split("::").next().unwrap_or("")
}

#[derive(Default)]
pub struct Plan {
    ops: Vec<Op>,
}

impl Plan {
    /// Appends `dispatch` with a fixed grid, reported under its kernel's name.
    pub fn push(&mut self, dispatch: Dispatch) {
        let name = kernel_name(&dispatch).to_string();
        self.ops.push(Op {
            dispatch,
            grid: Grid::Fixed,
            name,
        });
    }

    /// Appends the dispatches of one matrix product (one per stored part of `matrix`).
    pub fn push_matrix(&mut self, matrix: &str, dispatches: Vec<Dispatch>) {
        for dispatch in dispatches {
            let name = format!("{} {matrix}", kernel_name(&dispatch));
            self.ops.push(Op {
                dispatch,
                grid: Grid::Fixed,
                name,
            });
        }
    }

    /// Appends `dispatch` with a grid computed from the step's position.
    pub fn push_per_position(
        &mut self,
        dispatch: Dispatch,
        grid: impl Fn(u32) -> [u32; 3] + Send + Sync + 'static,
    ) {
        let name = kernel_name(&dispatch).to_string();
        self.ops.push(Op {
            dispatch,
            grid: Grid::PerPosition(Box::new(grid)),
            name,
        });
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Records every op into `pass` for a step at position `pos`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, pos: u32) {
        for op in &self.ops {
            op.record(pass, pos);
        }
    }
}

/// Runs the ops of `plans` at position `pos`, each in its own timed pass (in batches that fit
/// a query set), and returns (op name, GPU nanoseconds) per op in order; None without
/// timestamp queries.
pub fn timed(gpu: &Gpu, plans: &[&Plan], pos: u32) -> Result<Option<Vec<(String, f64)>>> {
    const BATCH: usize = 1024;
    let Some(profiler) = Profiler::new(gpu, BATCH as u32) else {
        return Ok(None);
    };
    let ops: Vec<&Op> = plans.iter().flat_map(|p| &p.ops).collect();
    let mut out = Vec::with_capacity(ops.len());
    for batch in ops.chunks(BATCH) {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profile"),
            });
        for (i, op) in batch.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&op.dispatch.pipeline.label),
                timestamp_writes: Some(profiler.pass(i as u32)),
            });
            op.record(&mut pass, pos);
        }
        profiler.resolve(&mut encoder, batch.len() as u32);
        gpu.queue.submit([encoder.finish()]);
        let times = profiler.read(gpu, batch.len() as u32)?;
        out.extend(batch.iter().map(|op| op.name.clone()).zip(times));
    }
    Ok(Some(out))
}
