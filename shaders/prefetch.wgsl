// prefetch: workgroups of a latency-bound decode kernel that only read the weights of a
// later dispatch (the next matvec), so that they are in L2 when it starts. A matvec of a few
// tens of MB starts cold from DRAM and ramps up (qkv and o_proj run at about half the
// bandwidth); the kernels before them (attention, the expert down projection) leave most of
// the memory system idle. The host appends these workgroups after the kernel's own (they run
// in its tail) and tells them apart by workgroup id.
// The includer declares `prefetch_src: array<vec4<u32>>` (the weights) and a uniform
// `keep_reads` that the host always sets to 0.

// Read every 16 bytes (coalesced, as a stream), not one word of every 32-byte sector.
override PREFETCH_ALL: bool = false;
// Loads a lane issues before it uses any of them.
const PREFETCH_UNROLL: u32 = 8u;

// Reads what part `part` of `n_parts` covers of prefetch_src (interleaved by invocation): one
// word of every 32-byte L2 sector, or every vec4 with PREFETCH_ALL. Returns the words' XOR
// for prefetch_keep.
fn prefetch(part: u32, n_parts: u32, lid: u32, wg: u32) -> u32 {
    let per = select(2u, 1u, PREFETCH_ALL);
    let n = arrayLength(&prefetch_src) / per;
    let stride = n_parts * wg;
    var acc = 0u;
    for (var i = part * wg + lid; i < n; i += PREFETCH_UNROLL * stride) {
        var w: array<vec4<u32>, PREFETCH_UNROLL>;
        for (var u = 0u; u < PREFETCH_UNROLL; u++) {
            let j = min(i + u * stride, n - 1u);
            w[u] = prefetch_src[j * per];
        }
        for (var u = 0u; u < PREFETCH_UNROLL; u++) {
            acc ^= w[u].x;
            if PREFETCH_ALL {
                acc ^= w[u].y ^ w[u].z ^ w[u].w;
            }
        }
    }
    return acc;
}

// Whether the reads' XOR must be stored: never (keep_reads is 0), but the compiler cannot
// know, so it keeps the loads.
fn prefetch_keep(acc: u32, keep_reads: u32) -> bool {
    return keep_reads != 0u && acc == keep_reads;
}
