// sample_f32: picks the next token from the logits and leaves it on the GPU: tokens[0] feeds
// the next step's embedding, history[sample_index] is read back for streaming.
// temperature 0: argmax (ties to the lowest id). Otherwise: keep the tokens whose logit is at
// least the top_k-th largest, then the fewest most likely of those whose mass reaches top_p
// (both thresholds found exactly by bisection over the logits' ordered bit patterns), and draw
// from softmax(logit / temperature) over what is kept with a counter-based generator seeded by
// (seed, sample_index), walking the ids in order. One workgroup; deterministic.
// NaN or infinite logits (or an lm_head workgroup that saw one) give history 0xffffffff, which
// the host reports as an error, and token 0 as the next input so that the step in flight
// stays in bounds.

//!include step

const WG: u32 = 256u;

struct Params {
    vocab: u32,
    top_k: u32,         // 0: no top-k
    temperature: f32,   // 0: greedy
    top_p: f32,         // 1: no top-p
    seed: u32,
    n_partials: u32,    // greedy: per-workgroup maxima left by the lm_head matvec (0: none)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;          // [vocab]
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;    // [1]
@group(0) @binding(4) var<storage, read_write> history: array<u32>;   // [max samples]
@group(0) @binding(5) var<storage, read> partials: array<vec2<u32>>;  // [n_partials] (max bits, id)

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// Maps f32 to u32 preserving order (for bisection over values).
fn ordered(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn wg_sum(v: f32, lid: u32) -> f32 {
    red_v[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if lid < s {
            red_v[lid] += red_v[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_v[0]);
    workgroupBarrier();
    return r;
}

// Counts (at most vocab, far below 2^24) add exactly in f32, in any order.
fn wg_count(v: u32, lid: u32) -> u32 {
    return u32(wg_sum(f32(v), lid));
}

// The contiguous id range of invocation lid (ranges in id order, for the ordered walk).
fn range_of(lid: u32) -> vec2<u32> {
    let per = (params.vocab + WG - 1u) / WG;
    let lo = min(lid * per, params.vocab);
    return vec2<u32>(lo, min(lo + per, params.vocab));
}

// Mass of exp((l - m) / T) over ids with ordered(l) >= t, in fixed order.
fn mass_above(t: u32, m: f32, lid: u32) -> f32 {
    let r = range_of(lid);
    var s = 0.0;
    for (var i = r.x; i < r.y; i++) {
        let l = logits[i];
        if ordered(l) >= t {
            s += exp((l - m) / params.temperature);
        }
    }
    return wg_sum(s, lid);
}

@compute @workgroup_size(WG)
fn sample_f32(@builtin(local_invocation_index) lid: u32) {
    let r = range_of(lid);
    // Argmax with the lowest id among equals: over the lm_head's per-workgroup maxima when
    // greedy, else over the logits (sampling needs the maximum anyway).
    var best_v = -3.0e38;
    var best_i = 0xffffffffu;
    // Non-finite values seen, tested on the bits (compilers may assume floats are finite).
    var bad = 0u;
    if params.temperature <= 0.0 && params.n_partials > 0u {
        for (var j = lid; j < params.n_partials; j += WG) {
            let p = partials[j];
            let l = bitcast<f32>(p.x);
            bad += select(0u, 1u, p.y == 0xfffffffeu);
            if p.y < 0xfffffffeu && (best_i == 0xffffffffu || l > best_v || (l == best_v && p.y < best_i)) {
                best_v = l;
                best_i = p.y;
            }
        }
    } else {
        for (var i = r.x; i < r.y; i++) {
            let l = logits[i];
            bad += select(0u, 1u, (bitcast<u32>(l) & 0x7f800000u) == 0x7f800000u);
            if l > best_v || best_i == 0xffffffffu {
                best_v = l;
                best_i = i;
            }
        }
    }
    let n_bad = wg_count(bad, lid);
    red_v[lid] = best_v;
    red_i[lid] = best_i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if lid < s {
            let ov = red_v[lid + s];
            let oi = red_i[lid + s];
            if oi != 0xffffffffu && (red_i[lid] == 0xffffffffu || ov > red_v[lid]
                || (ov == red_v[lid] && oi < red_i[lid])) {
                red_v[lid] = ov;
                red_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    let m = workgroupUniformLoad(&red_v[0]);
    var chosen = red_i[0];
    workgroupBarrier();

    if params.temperature > 0.0 {
        // Top-k threshold: the largest t with count(ordered(l) >= t) >= top_k.
        var t_lo = 0u;
        if params.top_k > 0u && params.top_k < params.vocab {
            var lo = 0u;
            var hi = ordered(m);
            while lo < hi {
                let mid = lo + (hi - lo + 1u) / 2u;
                var c = 0u;
                for (var i = r.x; i < r.y; i++) {
                    c += select(0u, 1u, ordered(logits[i]) >= mid);
                }
                if wg_count(c, lid) >= params.top_k {
                    lo = mid;
                } else {
                    hi = mid - 1u;
                }
            }
            t_lo = lo;
        }
        // Top-p threshold: the largest t >= t_lo whose mass reaches top_p of the kept mass.
        let kept = mass_above(t_lo, m, lid);
        var t = t_lo;
        if params.top_p < 1.0 {
            var lo = t_lo;
            var hi = ordered(m);
            while lo < hi {
                let mid = lo + (hi - lo + 1u) / 2u;
                if mass_above(mid, m, lid) >= params.top_p * kept {
                    lo = mid;
                } else {
                    hi = mid - 1u;
                }
            }
            t = lo;
        }
        let total = mass_above(t, m, lid);
        let u = f32(pcg(params.seed ^ pcg(step.sample_index)) >> 8u) / 16777216.0;
        let target_mass = u * total;
        // Each invocation's mass over its id range, then an ordered walk.
        var s = 0.0;
        for (var i = r.x; i < r.y; i++) {
            let l = logits[i];
            if ordered(l) >= t {
                s += exp((l - m) / params.temperature);
            }
        }
        red_v[lid] = s;
        workgroupBarrier();
        if lid == 0u {
            var acc = 0.0;
            var owner = WG;
            var last_nonempty = 0u;
            for (var j = 0u; j < WG; j++) {
                if red_v[j] > 0.0 {
                    last_nonempty = j;
                    if acc + red_v[j] > target_mass {
                        owner = j;
                        break;
                    }
                }
                acc += red_v[j];
            }
            // Rounding can leave the target past the last kept id: then take that id.
            let past_end = owner == WG;
            if past_end {
                owner = last_nonempty;
            }
            var last = chosen;
            let orng = range_of(owner);
            for (var i = orng.x; i < orng.y; i++) {
                let l = logits[i];
                if ordered(l) >= t {
                    last = i;
                    acc += exp((l - m) / params.temperature);
                    if !past_end && acc > target_mass {
                        break;
                    }
                }
            }
            red_i[0] = last;
        }
        workgroupBarrier();
        chosen = red_i[0];
    }
    let nonfinite = n_bad > 0u || chosen >= params.vocab
        || (bitcast<u32>(m) & 0x7f800000u) == 0x7f800000u;
    if lid == 0u {
        tokens[0] = select(chosen, 0u, nonfinite);
        history[step.sample_index] = select(chosen, 0xffffffffu, nonfinite);
    }
}
