// Workgroup-wide sum and max through workgroup memory: the portable reductions.
// The including kernel defines the override REDUCE_SIZE (its workgroup size) and takes a
// `ids: ReduceIds` entry-point argument; every invocation must call (these contain barriers).

struct ReduceIds {
    @builtin(local_invocation_index) lid: u32,
}

var<workgroup> reduce_scratch: array<f32, REDUCE_SIZE>;

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

fn workgroup_max(x: f32, ids: ReduceIds) -> f32 {
    reduce_scratch[ids.lid] = x;
    workgroupBarrier();
    for (var stride = REDUCE_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if ids.lid < stride {
            reduce_scratch[ids.lid] = max(reduce_scratch[ids.lid], reduce_scratch[ids.lid + stride]);
        }
        workgroupBarrier();
    }
    let total = reduce_scratch[0];
    workgroupBarrier();
    return total;
}
