// Workgroup-wide sum and max with subgroup operations: one subgroupAdd per subgroup, then the
// per-subgroup results through workgroup memory, combined in subgroup order (deterministic).
// Same interface as reduce_workgroup.wgsl; works for any subgroup size the device picks.

struct ReduceIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
}

var<workgroup> reduce_scratch: array<f32, REDUCE_SIZE>;

fn workgroup_sum(x: f32, ids: ReduceIds) -> f32 {
    let partial = subgroupAdd(x);
    if ids.sg_lane == 0u {
        reduce_scratch[ids.sg_id] = partial;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < ids.n_sg; i++) {
        total += reduce_scratch[i];
    }
    workgroupBarrier();
    return total;
}

fn workgroup_max(x: f32, ids: ReduceIds) -> f32 {
    let partial = subgroupMax(x);
    if ids.sg_lane == 0u {
        reduce_scratch[ids.sg_id] = partial;
    }
    workgroupBarrier();
    var total = reduce_scratch[0];
    for (var i = 1u; i < ids.n_sg; i++) {
        total = max(total, reduce_scratch[i]);
    }
    workgroupBarrier();
    return total;
}
