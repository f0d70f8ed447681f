// moe_route_prefill: groups a prefill step's entries (moe_topk_prefill's: entry t*k + j is
// token t's j-th choice) by expert for the grouped expert matmuls: per-expert counts, offsets
// (exclusive prefix sum), `sorted` (entries grouped by expert, in entry order within an
// expert), `slot_pos` (where each entry landed), and the list of row tiles (expert, first
// sorted row) that the grouped matmuls run over. One workgroup; deterministic.
//
// The entries go in chunks through a bit mask in workgroup memory, a row of words per expert
// with a bit per entry of the chunk, so that a set bit is its entry's number and placing an
// entry reads nothing from memory. Each expert's row is split into segments, one an
// invocation: counting is popcounts, and an entry's place is its expert's start, the bits
// before it in its row and the chunks before. Two passes: the counts, then the places.

const WG: u32 = 256u;           // at least MAX_EXPERTS
// The mask's words: 8192 (32 KiB) where the device allows, fewer where its workgroup memory
// is smaller (the host sizes it; a chunk of entries is then shorter).
override MASK_WORDS: u32 = 8192u;

struct Params {
    n_tokens: u32,
    n_experts: u32,
    k: u32,
    tile_m: u32,     // rows per tile of the grouped matmuls
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> experts: array<u32>;           // [n_tokens * k]
@group(0) @binding(2) var<storage, read_write> offsets: array<u32>;     // [n_experts + 1]
@group(0) @binding(3) var<storage, read_write> sorted: array<u32>;      // [n_tokens * k]
@group(0) @binding(4) var<storage, read_write> slot_pos: array<u32>;    // [n_tokens * k]
@group(0) @binding(5) var<storage, read_write> tiles: array<vec2<u32>>; // [max tiles]
@group(0) @binding(6) var<storage, read_write> tile_count: array<u32>;  // [1]

var<workgroup> mask: array<atomic<u32>, MASK_WORDS>;
var<workgroup> seg_count: array<u32, WG>;  // set bits in each invocation's segment
var<workgroup> filled: array<u32, WG>;     // per expert: entries counted (pass 1) or placed (2)

// The invocation's part of the mask: words [w0, w1) of expert e's row (row_words each).
struct Segment {
    e: u32,
    w0: u32,
    w1: u32,
    first: bool,   // the expert's first segment
    in_use: bool,
    per: u32,      // segments per expert
}

fn segment(lid: u32, n_experts: u32, row_words: u32) -> Segment {
    let per = WG / n_experts;  // segments per expert
    let e = lid / per;
    let s = lid % per;
    return Segment(e, s * row_words / per, (s + 1u) * row_words / per, s == 0u, e < n_experts, per);
}

// Clears the mask and sets entry (c0 + i)'s bit i in the row of its expert, for the chunk of
// n entries from c0; returns after a barrier. Uniform control flow.
fn fill_mask(lid: u32, c0: u32, n: u32, row_words: u32) {
    for (var i = lid; i < params.n_experts * row_words; i += WG) {
        atomicStore(&mask[i], 0u);
    }
    workgroupBarrier();
    for (var i = lid; i < n; i += WG) {
        let e = experts[c0 + i];
        atomicOr(&mask[e * row_words + i / 32u], 1u << (i % 32u));
    }
    workgroupBarrier();
}

// Set bits in the invocation's segment into seg_count, then a barrier.
fn count_segment(lid: u32, sg: Segment, row_words: u32) {
    var n = 0u;
    if sg.in_use {
        for (var w = sg.w0; w < sg.w1; w++) {
            n += countOneBits(atomicLoad(&mask[sg.e * row_words + w]));
        }
    }
    seg_count[lid] = n;
    workgroupBarrier();
}

// The chunk's entries of each expert (its segments' seg_count) added to filled by its first
// segment's invocation, then a barrier.
fn add_chunk_counts(lid: u32, sg: Segment) {
    if sg.in_use && sg.first {
        var n = 0u;
        for (var s = 0u; s < sg.per; s++) {
            n += seg_count[lid + s];
        }
        filled[sg.e] += n;
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn moe_route_prefill(@builtin(local_invocation_index) lid: u32) {
    let n_entries = params.n_tokens * params.k;
    let n_experts = params.n_experts;
    let row_words = MASK_WORDS / n_experts;
    let chunk = row_words * 32u;
    let sg = segment(lid, n_experts, row_words);
    filled[lid] = 0u;
    workgroupBarrier();

    // Pass 1: each expert's entries.
    for (var c0 = 0u; c0 < n_entries; c0 += chunk) {
        fill_mask(lid, c0, min(chunk, n_entries - c0), row_words);
        count_segment(lid, sg, row_words);
        add_chunk_counts(lid, sg);
    }
    if lid == 0u {
        var acc = 0u;
        var n_tiles = 0u;
        for (var e = 0u; e < n_experts; e++) {
            let count = filled[e];
            offsets[e] = acc;
            // From here on filled[e] is where expert e's next entry goes.
            filled[e] = acc;
            for (var s = 0u; s < count; s += params.tile_m) {
                tiles[n_tiles] = vec2<u32>(e, acc + s);
                n_tiles++;
            }
            acc += count;
        }
        offsets[n_experts] = acc;
        tile_count[0] = n_tiles;
    }
    workgroupBarrier();

    // Pass 2: each entry's place.
    for (var c0 = 0u; c0 < n_entries; c0 += chunk) {
        fill_mask(lid, c0, min(chunk, n_entries - c0), row_words);
        count_segment(lid, sg, row_words);
        if sg.in_use {
            var at = filled[sg.e];
            for (var s = lid - lid % sg.per; s < lid; s++) {
                at += seg_count[s];
            }
            for (var w = sg.w0; w < sg.w1; w++) {
                var bits = atomicLoad(&mask[sg.e * row_words + w]);
                while bits != 0u {
                    let entry = c0 + w * 32u + firstTrailingBit(bits);
                    bits &= bits - 1u;
                    sorted[at] = entry;
                    slot_pos[entry] = at;
                    at++;
                }
            }
        }
        workgroupBarrier();
        add_chunk_counts(lid, sg);
    }
}
