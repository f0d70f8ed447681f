// grid_barrier: what a persistent decode kernel would pay for a grid-wide barrier built from
// storage atomics (benches/grid_barrier.rs), and whether plain stores made before it are seen
// by other workgroups after it. Every workgroup must be resident (the host launches at most
// one or two a multiprocessor), or the spin never ends.

struct Params {
    rounds: u32,
    n_wg: u32,
    // Read the other workgroup's word with atomicLoad instead of a plain load.
    atomic_read: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> arrived: atomic<u32>;
@group(0) @binding(2) var<storage, read_write> words: array<u32>;        // [n_wg * 64]
@group(0) @binding(3) var<storage, read_write> stale: atomic<u32>;
@group(0) @binding(4) var<storage, read_write> words_a: array<atomic<u32>>; // the same, atomic

// Rounds of: every workgroup writes its 64 words (round + 1, plain stores), arrives, waits
// for all, then checks 64 words of the next workgroup; a word below round + 1 is stale.
@compute @workgroup_size(64)
fn barrier_rounds(@builtin(local_invocation_index) lid: u32,
                  @builtin(workgroup_id) wg_id: vec3<u32>) {
    let w = wg_id.x;
    let other = (w + 1u) % params.n_wg;
    for (var r = 0u; r < params.rounds; r++) {
        if params.atomic_read != 0u {
            atomicStore(&words_a[w * 64u + lid], r + 1u);
        } else {
            words[w * 64u + lid] = r + 1u;
        }
        storageBarrier();
        workgroupBarrier();
        if lid == 0u {
            atomicAdd(&arrived, 1u);
            let want = (r + 1u) * params.n_wg;
            loop {
                if atomicLoad(&arrived) >= want {
                    break;
                }
            }
        }
        workgroupBarrier();
        storageBarrier();
        var v: u32;
        if params.atomic_read != 0u {
            v = atomicLoad(&words_a[other * 64u + lid]);
        } else {
            v = words[other * 64u + lid];
        }
        if v < r + 1u {
            atomicAdd(&stale, 1u);
        }
    }
}

// One round as its own dispatch: the same write and check, with the dispatch boundary (and
// wgpu's barrier between dispatches that write the same buffer) as the barrier.
@compute @workgroup_size(64)
fn dispatch_round(@builtin(local_invocation_index) lid: u32,
                  @builtin(workgroup_id) wg_id: vec3<u32>) {
    let w = wg_id.x;
    let other = (w + 1u) % params.n_wg;
    let r = words[w * 64u + lid];
    if words[other * 64u + lid] < r {
        atomicAdd(&stale, 1u);
    }
    storageBarrier();
    workgroupBarrier();
    words[w * 64u + lid] = r + 1u;
}
