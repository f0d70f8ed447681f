// Reductions through workgroup memory: the portable path. The including kernel defines
// REDUCE_SIZE (its workgroup size, a multiple of GROUP_LANES) and takes `ids: ReduceIds`.
// Every invocation must call these in uniform control flow (they contain barriers).
//
// Groups: lanes that cooperate on one row. Here a group is GROUP_LANES consecutive
// invocations; reduce_subgroup.wgsl makes each subgroup a group instead.

struct ReduceIds {
    @builtin(local_invocation_index) lid: u32,
}

const GROUP_LANES: u32 = 32u;

var<workgroup> reduce_scratch: array<f32, REDUCE_SIZE>;

fn group_id(ids: ReduceIds) -> u32 {
    return ids.lid / GROUP_LANES;
}

fn group_lane(ids: ReduceIds) -> u32 {
    return ids.lid % GROUP_LANES;
}

fn group_lanes(ids: ReduceIds) -> u32 {
    return GROUP_LANES;
}

fn n_groups(ids: ReduceIds) -> u32 {
    return REDUCE_SIZE / GROUP_LANES;
}

// Sum over the invocation's group, returned to every lane of the group (fixed order).
fn group_sum(x: f32, ids: ReduceIds) -> f32 {
    reduce_scratch[ids.lid] = x;
    workgroupBarrier();
    let lane = ids.lid % GROUP_LANES;
    for (var stride = GROUP_LANES / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            reduce_scratch[ids.lid] += reduce_scratch[ids.lid + stride];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[ids.lid - lane];
    workgroupBarrier();
    return total;
}

fn workgroup_sum(x: f32, ids: ReduceIds) -> f32 {
    reduce_scratch[ids.lid] = x;
    workgroupBarrier();
    for (var stride = REDUCE_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if ids.lid < stride {
            reduce_scratch[ids.lid] += reduce_scratch[ids.lid + stride];
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}
