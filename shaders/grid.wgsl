// Flat invocation indices for a 1-D dispatch that Gpu::grid (src/gpu/pipeline.rs) folds into
// rows of workgroups, to stay within the per-dimension workgroup limit. The kernel takes
// `grid: GridIds` and asks grid_index for its element.

struct GridIds {
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// The invocation's index in the unfolded dispatch, for workgroups of `wg` invocations.
fn grid_index(grid: GridIds, wg: u32) -> u32 {
    return grid.gid.x + grid.gid.y * grid.nwg.x * wg;
}
