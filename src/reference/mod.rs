//! CPU references, one per kernel and of the same name, computed in f64 from the exact weight
//! values: the ground truth that GPU kernels are tested against. Written for clarity, not
//! speed; tests use them on small shapes. `forward` runs the whole model with them.

pub mod forward;

use crate::checkpoint::mxfp4;

/// bf16 bytes (little-endian) to f32, exactly.
pub fn bf16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
        .collect()
}

/// f32 to bf16 bytes, round to nearest even (for building test weights).
pub fn f32_to_bf16(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_bits().to_le_bytes())
        .collect()
}

/// Rows `ids` of a bf16 [vocab, hidden] table, as f32 [ids.len(), hidden].
pub fn embed_f32_bf16w(table: &[u8], hidden: usize, ids: &[u32]) -> Vec<f32> {
    ids.iter()
        .flat_map(|&id| {
            let row = &table[id as usize * hidden * 2..(id as usize + 1) * hidden * 2];
            bf16_to_f32(row)
        })
        .collect()
}

/// RMSNorm of each row of `x` (rows of gain.len()): x * rsqrt(mean(x^2) + eps) * gain.
pub fn rmsnorm_f32(x: &[f32], gain: &[f32], eps: f32) -> Vec<f32> {
    let h = gain.len();
    x.chunks_exact(h)
        .flat_map(|row| {
            let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / h as f64;
            let scale = 1.0 / (ms + eps as f64).sqrt();
            row.iter()
                .zip(gain)
                .map(move |(&v, &g)| (v as f64 * scale * g as f64) as f32)
        })
        .collect()
}

/// `W x (+ bias) (+ residual)` with W bf16 [rows, k], optionally on RMSNorm(x).
pub fn matvec_f32_bf16w(
    w: &[u8],
    x: &[f32],
    norm: Option<(&[f32], f32)>,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let k = x.len();
    let xs = match norm {
        Some((gain, eps)) => rmsnorm_f32(x, gain, eps),
        None => x.to_vec(),
    };
    let rows = w.len() / (2 * k);
    (0..rows)
        .map(|r| {
            let row = w[r * k * 2..(r + 1) * k * 2].chunks_exact(2);
            let mut y: f64 = row
                .zip(&xs)
                .map(|(a, &b)| {
                    let a = f32::from_bits((u16::from_le_bytes([a[0], a[1]]) as u32) << 16);
                    a as f64 * b as f64
                })
                .sum();
            if let Some(b) = bias {
                y += b[r] as f64;
            }
            if let Some(res) = residual {
                y += res[r] as f64;
            }
            y as f32
        })
        .collect()
}

/// Applies the half-split rotation to one head vector at `pos` with a (cos, sin) table of
/// head_dim / 2 entries per position.
pub fn rope_f32(head: &mut [f32], pos: usize, table: &[[f32; 2]]) {
    let half = head.len() / 2;
    for i in 0..half {
        let [c, s] = table[pos * half + i];
        let (x1, x2) = (head[i] as f64, head[i + half] as f64);
        head[i] = (x1 * c as f64 - x2 * s as f64) as f32;
        head[i + half] = (x2 * c as f64 + x1 * s as f64) as f32;
    }
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// 0: full causal attention, otherwise the sliding window (the query itself included).
    pub window: usize,
}

/// Attention with sinks for queries `q` [T, heads, D] at positions `q_pos` over keys/values
/// [positions, kv_heads, D] indexed by absolute position (rotation already applied):
/// softmax over (q.k / sqrt(D) for visible keys, sink), the sink's share dropped.
pub fn attention_f32(
    shape: AttentionShape,
    q: &[f32],
    q_pos: &[usize],
    keys: &[f32],
    values: &[f32],
    sinks: &[f32],
) -> Vec<f32> {
    let AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim: d,
        window,
    } = shape;
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; q_pos.len() * n_heads * d];
    for (t, &pos) in q_pos.iter().enumerate() {
        let lo = if window > 0 {
            (pos + 1).saturating_sub(window)
        } else {
            0
        };
        for h in 0..n_heads {
            let kvh = h / group;
            let qv = &q[(t * n_heads + h) * d..(t * n_heads + h + 1) * d];
            let logits: Vec<f64> = (lo..=pos)
                .map(|j| {
                    let kv = &keys[(j * n_kv_heads + kvh) * d..(j * n_kv_heads + kvh + 1) * d];
                    qv.iter()
                        .zip(kv)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let sink = sinks[h] as f64;
            let m = logits.iter().fold(sink, |m, &l| m.max(l));
            let denom = (sink - m).exp() + logits.iter().map(|&l| (l - m).exp()).sum::<f64>();
            for i in 0..d {
                let mut acc = 0f64;
                for (n, j) in (lo..=pos).enumerate() {
                    let p = (logits[n] - m).exp() / denom;
                    acc += p * values[(j * n_kv_heads + kvh) * d + i] as f64;
                }
                out[(t * n_heads + h) * d + i] = acc as f32;
            }
        }
    }
    out
}

/// Top-k of `logits` (ties to the lowest index) and the softmax over the selected logits.
pub fn router_topk(logits: &[f32], k: usize) -> (Vec<usize>, Vec<f32>) {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Stable sort by descending logit keeps the lowest index first among equals.
    order.sort_by(|&a, &b| {
        logits[b]
            .partial_cmp(&logits[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let ids: Vec<usize> = order[..k].to_vec();
    let m = logits[ids[0]] as f64;
    let e: Vec<f64> = ids.iter().map(|&i| (logits[i] as f64 - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    (ids, e.iter().map(|v| (v / sum) as f32).collect())
}

/// The decode router: RMSNorm(x) (returned, the experts' input), the logits `W xn + bias`
/// (rounded to f32, as the kernel keeps them) and their [`router_topk`].
pub fn router_f32_bf16w(
    w: &[u8],
    x: &[f32],
    gain: &[f32],
    eps: f32,
    bias: &[f32],
    k: usize,
) -> (Vec<f32>, Vec<usize>, Vec<f32>) {
    let logits = matvec_f32_bf16w(w, x, Some((gain, eps)), Some(bias), None);
    let (ids, weights) = router_topk(&logits, k);
    (rmsnorm_f32(x, gain, eps), ids, weights)
}

/// The MXFP4 expert weights of one layer: gate_up [E, 2I, H/32, 16] / [E, 2I, H/32] and down
/// [E, H, I/32, 16] / [E, H, I/32], biases in f32.
pub struct ExpertsRef<'a> {
    pub hidden: usize,
    pub inter: usize,
    pub gate_up_blocks: &'a [u8],
    pub gate_up_scales: &'a [u8],
    pub gate_up_bias: &'a [f32],
    pub down_blocks: &'a [u8],
    pub down_scales: &'a [u8],
    pub down_bias: &'a [f32],
}

impl ExpertsRef<'_> {
    /// Row `row` of expert `e`'s gate_up matrix, exactly.
    fn gate_up_row(&self, e: usize, row: usize) -> Vec<f64> {
        let nb = self.hidden / 32;
        let r = e * 2 * self.inter + row;
        mxfp4::decode_f64(
            &self.gate_up_blocks[r * nb * 16..(r + 1) * nb * 16],
            &self.gate_up_scales[r * nb..(r + 1) * nb],
        )
    }

    fn down_row(&self, e: usize, row: usize) -> Vec<f64> {
        let nb = self.inter / 32;
        let r = e * self.hidden + row;
        mxfp4::decode_f64(
            &self.down_blocks[r * nb * 16..(r + 1) * nb * 16],
            &self.down_scales[r * nb..(r + 1) * nb],
        )
    }
}

/// The clamped SwiGLU of gpt-oss: g sigmoid(1.702 g) (u + 1), g <= limit, |u| <= limit.
pub fn swiglu(g: f64, u: f64, limit: f64) -> f64 {
    let g = g.min(limit);
    let u = u.clamp(-limit, limit);
    g / (1.0 + (-1.702 * g).exp()) * (u + 1.0)
}

/// act [k, I]: per selected expert, SwiGLU of the gate_up projection of RMSNorm(x).
pub fn moe_gate_up_f32_mf4w(
    x: &[f32],
    gain: &[f32],
    eps: f32,
    logits: &[f32],
    k: usize,
    limit: f32,
    experts: &ExpertsRef<'_>,
) -> Vec<f32> {
    let t = rmsnorm_f32(x, gain, eps);
    let (ids, _) = router_topk(logits, k);
    let mut act = Vec::with_capacity(k * experts.inter);
    for &e in &ids {
        for i in 0..experts.inter {
            let h = |row: usize| {
                let w = experts.gate_up_row(e, row);
                w.iter().zip(&t).map(|(&a, &b)| a * b as f64).sum::<f64>()
                    + experts.gate_up_bias[e * 2 * experts.inter + row] as f64
            };
            act.push(swiglu(h(2 * i), h(2 * i + 1), limit as f64) as f32);
        }
    }
    act
}

/// x + sum_j w_j (W2_j act_j + b2_j).
pub fn moe_down_f32_mf4w(
    x: &[f32],
    logits: &[f32],
    k: usize,
    act: &[f32],
    experts: &ExpertsRef<'_>,
) -> Vec<f32> {
    let (ids, weights) = router_topk(logits, k);
    (0..experts.hidden)
        .map(|r| {
            let mut y = x[r] as f64;
            for (j, &e) in ids.iter().enumerate() {
                let w = experts.down_row(e, r);
                let a = &act[j * experts.inter..(j + 1) * experts.inter];
                let dot: f64 = w.iter().zip(a).map(|(&p, &q)| p * q as f64).sum();
                y += weights[j] as f64 * (dot + experts.down_bias[e * experts.hidden + r] as f64);
            }
            y as f32
        })
        .collect()
}

/// The whole MoE block for one token: x + MoE(RMSNorm(x)).
pub fn moe_f32_mf4w(
    x: &[f32],
    gain: &[f32],
    eps: f32,
    logits: &[f32],
    k: usize,
    limit: f32,
    experts: &ExpertsRef<'_>,
) -> Vec<f32> {
    let act = moe_gate_up_f32_mf4w(x, gain, eps, logits, k, limit, experts);
    moe_down_f32_mf4w(x, logits, k, &act, experts)
}

/// The sampler's counter-based generator (the same PCG hash as shaders/sample_f32.wgsl).
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The uniform draw in [0, 1) for sample `index` under `seed`.
pub fn sample_uniform(seed: u32, index: u32) -> f32 {
    (pcg(seed ^ pcg(index)) >> 8) as f32 / 16777216.0
}

/// Sampling settings, as the sampler kernel takes them.
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub seed: u32,
}

/// The ids the sampler may choose from (top-k by value, ties at the threshold kept, then the
/// smallest top set by value reaching top_p of the mass), and their masses exp((l - m) / T).
pub fn sample_candidates(logits: &[f32], s: &Sampling) -> Vec<(usize, f64)> {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let mut threshold = f32::NEG_INFINITY;
    if s.top_k > 0 && s.top_k < logits.len() {
        threshold = sorted[s.top_k - 1];
    }
    let mass = |t: f32| -> f64 {
        logits
            .iter()
            .filter(|&&l| l >= t)
            .map(|&l| ((l as f64 - m) / s.temperature as f64).exp())
            .sum()
    };
    if s.top_p < 1.0 {
        let kept = mass(threshold);
        // The largest value threshold whose mass still reaches top_p of the kept mass.
        let mut distinct: Vec<f32> = sorted.iter().cloned().filter(|&l| l >= threshold).collect();
        distinct.dedup();
        for &t in &distinct {
            if mass(t) >= s.top_p as f64 * kept {
                threshold = t;
                break;
            }
        }
    }
    logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l >= threshold)
        .map(|(i, &l)| (i, ((l as f64 - m) / s.temperature as f64).exp()))
        .collect()
}

/// The token the sampler picks for `logits` at draw `index`: argmax (lowest id among ties) at
/// temperature 0, else the first candidate, in id order, whose cumulative mass passes u * total.
pub fn sample_f32(logits: &[f32], s: &Sampling, index: u32) -> u32 {
    // No choice is meaningful over NaN or infinite logits: the kernel reports them as u32::MAX.
    if logits.iter().any(|l| !l.is_finite()) {
        return u32::MAX;
    }
    if s.temperature <= 0.0 {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let cands = sample_candidates(logits, s);
    let total: f64 = cands.iter().map(|c| c.1).sum();
    let target = sample_uniform(s.seed, index) as f64 * total;
    let mut acc = 0.0;
    for &(i, w) in &cands {
        acc += w;
        if acc > target {
            return i as u32;
        }
    }
    cands.last().map(|c| c.0 as u32).unwrap_or(0)
}
