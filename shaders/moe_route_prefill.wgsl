// moe_route_prefill: groups a prefill step's tokens by expert for the grouped expert matmuls.
// Per token: top-k and softmax weights (entry t*k + j is token t's j-th choice). Then, in a
// fixed order (one invocation per expert scanning entries in order: deterministic, no atomics):
// per-expert counts, offsets (exclusive prefix sum), `sorted` (entries grouped by expert, in
// entry order within an expert), `slot_pos` (where each entry landed), and the list of row
// tiles (expert, first sorted row) that the grouped matmuls run over. One workgroup.

//!include topk

const WG: u32 = 256u;

struct Params {
    n_tokens: u32,
    n_experts: u32,
    k: u32,
    tile_m: u32,     // rows per tile of the grouped matmuls
}

@group(0) @binding(0) var<uniform> params: Params;
// binding 1: router_logits [n_tokens, n_experts] (topk.wgsl)
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;      // [n_tokens * k]
@group(0) @binding(3) var<storage, read_write> experts: array<u32>;      // [n_tokens * k]
@group(0) @binding(4) var<storage, read_write> offsets: array<u32>;      // [n_experts + 1]
@group(0) @binding(5) var<storage, read_write> sorted: array<u32>;       // [n_tokens * k]
@group(0) @binding(6) var<storage, read_write> slot_pos: array<u32>;     // [n_tokens * k]
@group(0) @binding(7) var<storage, read_write> tiles: array<vec2<u32>>;  // [max tiles]
@group(0) @binding(8) var<storage, read_write> tile_count: array<u32>;   // [1]

var<workgroup> counts: array<u32, WG>;
var<workgroup> starts: array<u32, WG>;
// Entries staged through workgroup memory, so that the per-expert scans read broadcasts from
// workgroup memory instead of global memory.
const STAGE: u32 = 2048u;
var<workgroup> staged: array<u32, STAGE>;

// Copies entries base.. (STAGE at most) of `experts` to `staged` for every invocation to scan,
// and returns how many. Call from uniform control flow: it ends in a barrier.
fn stage_entries(base: u32, n_entries: u32, lid: u32) -> u32 {
    let n = min(STAGE, n_entries - base);
    for (var i = lid; i < n; i += WG) {
        staged[i] = experts[base + i];
    }
    workgroupBarrier();
    return n;
}

@compute @workgroup_size(WG)
fn moe_route_prefill(@builtin(local_invocation_index) lid: u32) {
    let k = params.k;
    for (var t = lid; t < params.n_tokens; t += WG) {
        let r = router_topk(t, params.n_experts, k);
        for (var j = 0u; j < k; j++) {
            experts[t * k + j] = r.ids[j];
            weights[t * k + j] = r.weights[j];
        }
    }
    storageBarrier();
    workgroupBarrier();

    let n_entries = params.n_tokens * k;
    var count = 0u;
    for (var base = 0u; base < n_entries; base += STAGE) {
        let n = stage_entries(base, n_entries, lid);
        if lid < params.n_experts {
            for (var i = 0u; i < n; i++) {
                count += select(0u, 1u, staged[i] == lid);
            }
        }
        workgroupBarrier();
    }
    counts[lid] = count;
    workgroupBarrier();
    if lid == 0u {
        var acc = 0u;
        var n_tiles = 0u;
        for (var e = 0u; e < params.n_experts; e++) {
            starts[e] = acc;
            offsets[e] = acc;
            for (var s = 0u; s < counts[e]; s += params.tile_m) {
                tiles[n_tiles] = vec2<u32>(e, acc + s);
                n_tiles++;
            }
            acc += counts[e];
        }
        offsets[params.n_experts] = acc;
        tile_count[0] = n_tiles;
    }
    workgroupBarrier();
    var at = starts[lid];
    for (var base = 0u; base < n_entries; base += STAGE) {
        let n = stage_entries(base, n_entries, lid);
        if lid < params.n_experts {
            for (var i = 0u; i < n; i++) {
                if staged[i] == lid {
                    sorted[at] = base + i;
                    slot_pos[base + i] = at;
                    at++;
                }
            }
        }
        workgroupBarrier();
    }
}
