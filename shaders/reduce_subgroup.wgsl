// Reductions with subgroup operations; same interface as reduce_workgroup.wgsl. A group is a
// subgroup, whatever size the device picks, so group_sum needs no workgroup memory and no
// barrier. Workgroup-wide results combine per-subgroup values in subgroup order
// (deterministic).

struct ReduceIds {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
}

var<workgroup> reduce_scratch: array<f32, REDUCE_SIZE>;

fn group_id(ids: ReduceIds) -> u32 {
    return ids.sg_id;
}

fn group_lane(ids: ReduceIds) -> u32 {
    return ids.sg_lane;
}

fn group_lanes(ids: ReduceIds) -> u32 {
    return ids.sg_size;
}

fn n_groups(ids: ReduceIds) -> u32 {
    return ids.n_sg;
}

fn group_sum(x: f32, ids: ReduceIds) -> f32 {
    return subgroupAdd(x);
}

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
