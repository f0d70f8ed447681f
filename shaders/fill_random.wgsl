// fill_random: fills a buffer with seeded pseudo-random contents straight on the GPU, for
// synthetic weights of real shapes (benchmarks need no download and no disk). One invocation
// per u32 word; the value depends only on (seed, word index), so a fill is reproducible.
// Modes: 0 bf16 pairs uniform in [lo, hi]; 1 random bytes (MXFP4 nibbles); 2 bytes uniform in
// the integers [lo, hi] (E8M0 scales); 3 f32 uniform in [lo, hi].

//!include grid

struct Params {
    n_words: u32,
    mode: u32,
    seed: u32,
    _pad: u32,
    lo: f32,
    hi: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

const WG: u32 = 256u;

fn hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn unit(h: u32) -> f32 {
    return f32(h >> 8u) / 16777216.0;
}

@compute @workgroup_size(WG)
fn fill_random(grid: GridIds) {
    let i = grid_index(grid, WG);
    if i >= params.n_words {
        return;
    }
    let h1 = hash(i ^ hash(params.seed));
    let h2 = hash(h1 ^ 0x9e3779b9u);
    let span = params.hi - params.lo;
    switch params.mode {
        case 0u: {
            let a = bitcast<u32>(params.lo + span * unit(h1)) >> 16u;
            let b = bitcast<u32>(params.lo + span * unit(h2)) & 0xffff0000u;
            out[i] = a | b;
        }
        case 1u: {
            out[i] = h1;
        }
        case 2u: {
            let n = u32(params.hi - params.lo) + 1u;
            var w = 0u;
            for (var j = 0u; j < 4u; j++) {
                let b = u32(params.lo) + hash(h1 + j) % n;
                w |= (b & 0xffu) << (8u * j);
            }
            out[i] = w;
        }
        default: {
            out[i] = bitcast<u32>(params.lo + span * unit(h1));
        }
    }
}
