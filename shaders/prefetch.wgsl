// prefetch: workgroups of a latency-bound decode kernel that only read the weights of the
// next dispatch (a matvec), so that they are in L2 when it starts. A matvec of a few tens of
// MB read cold from DRAM runs at about half the bandwidth (o_proj: 23.6 MB in ~10 us on the
// H200, ~6 us from L2); decode attention at short depth moves almost nothing. The host
// appends these workgroups after the kernel's own and tells them apart by workgroup id.
// The includer declares `prefetch_src: array<vec4<u32>>` (the weights) and a uniform
// `keep_reads` that the host always sets to 0.

// Loads a lane issues before it uses any of them.
const PREFETCH_UNROLL: u32 = 8u;

// Reads one word of every 32-byte L2 sector (every other vec4) of prefetch_src that part
// `part` of `n_parts` covers (interleaved by invocation), and returns their XOR for
// prefetch_keep.
fn prefetch(part: u32, n_parts: u32, lid: u32, wg: u32) -> u32 {
    let sectors = arrayLength(&prefetch_src) / 2u;
    let stride = n_parts * wg;
    var acc = 0u;
    for (var i = part * wg + lid; i < sectors; i += PREFETCH_UNROLL * stride) {
        var w: array<u32, PREFETCH_UNROLL>;
        for (var u = 0u; u < PREFETCH_UNROLL; u++) {
            w[u] = prefetch_src[2u * min(i + u * stride, sectors - 1u)].x;
        }
        for (var u = 0u; u < PREFETCH_UNROLL; u++) {
            acc ^= w[u];
        }
    }
    return acc;
}

// Whether the reads' XOR must be stored: never (keep_reads is 0), but the compiler cannot
// know, so it keeps the loads.
fn prefetch_keep(acc: u32, keep_reads: u32) -> bool {
    return keep_reads != 0u && acc == keep_reads;
}
