//! The memory plan (model::memory) against what is really allocated: the weights of a
//! checkpoint and a forward pass's KV cache and activations, counted by the device as they are
//! created, on every path and at several contexts. `inspect`
//! prints the plan without a GPU, so a plan that drifts from the allocations would mislead
//! whoever sizes a context by it.

mod common;

use common::{paths, repo_path};
use oss_wgpu::gpu::Gpu;
use oss_wgpu::model::forward::{Forward, DEFAULT_CHUNK};
use oss_wgpu::model::memory::MemoryPlan;
use oss_wgpu::model::Model;

fn check(gpu: &Gpu, ctx: usize) {
    // The device's placeholder buffers for unused bindings (Gpu::dummy, 256 bytes a slot) are
    // made on first use and belong to no model: make them first, so that they are not counted.
    for slot in 0..4 {
        gpu.dummy(slot).unwrap();
    }
    let start = gpu.allocated_bytes();
    let model = Model::load(gpu, &repo_path("tests/fixtures/tiny-a"), false).unwrap();
    let weights = gpu.allocated_bytes() - start;
    let c = &model.config;
    let _forward = Forward::new(gpu, &model.weights, c, ctx, DEFAULT_CHUNK, 1).unwrap();
    let state = gpu.allocated_bytes() - start - weights;
    let plan = MemoryPlan::on(gpu, c, ctx).unwrap();
    let what = format!("ctx {ctx}, {:?}", gpu.precision());
    assert_eq!(plan.weights, weights, "weights, {what}");
    assert_eq!(
        plan.kv_cache + plan.activations,
        state,
        "KV + activations, {what}"
    );
}

#[test]
fn the_plan_is_what_is_allocated() {
    for gpu in paths() {
        for ctx in [1, 40, 256] {
            check(&gpu, ctx);
        }
    }
}
