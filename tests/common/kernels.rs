//! What the kernel tests (tests/kernels.rs, tests/prefill.rs) share: poisoned outputs, weight
//! matrices and expert tensors split into parts as a lowered binding limit splits them, KV
//! caches in the device's element type, and the f16-cache tolerance.
//!
//! `use common::kernels::*` brings in what every kernel test uses: the kernel modules and
//! their shared types, the test paths and comparisons, and these helpers.
// Every test executable compiles this module; those that are not kernel tests use none of it.
#![allow(unused_imports)]

pub use super::{assert_close, assert_within, paths, Rng};
pub use oss_wgpu::gpu::{Dispatch, Gpu, GpuBuffer, KvChoice};
pub use oss_wgpu::kernels::moe::{Experts, MoeBuffers, MoeShape, Routing};
pub use oss_wgpu::kernels::*;

use oss_wgpu::reference::{self as r, f32_to_bf16, AttentionShape, ExpertsRef};

/// Runs `check(gpu, case, seed0 + i)` for every case `i` on every test path.
pub fn for_each_case<C>(cases: &[C], seed0: u64, check: impl Fn(&Gpu, &C, u64)) {
    for gpu in paths() {
        for (i, c) in cases.iter().enumerate() {
            check(&gpu, c, seed0 + i as u64);
        }
    }
}

pub fn up(gpu: &Gpu, label: &str, v: &[f32]) -> GpuBuffer {
    gpu.upload_pod(label, v).unwrap()
}

/// An output buffer of `floats` f32, poisoned so that unwritten elements show.
pub fn out(gpu: &Gpu, label: &str, floats: usize) -> GpuBuffer {
    let b = gpu.storage(label, floats as u64 * 4).unwrap();
    gpu.poison(&b);
    b
}

pub fn bf16_matrix(rng: &mut Rng, rows: usize, k: usize, a: f32) -> Vec<u8> {
    f32_to_bf16(&rng.vec_sym(rows * k, a))
}

/// Runs one dispatch per (first row, rows) part of the bf16 [_, k] matrix `w`, each part in a
/// buffer of its own as a lowered binding limit splits it: `part(buffer, first row, rows)`.
pub fn run_row_parts(
    gpu: &Gpu,
    label: &str,
    w: &[u8],
    k: usize,
    parts: &[(usize, usize)],
    part: impl Fn(Bf16Rows) -> oss_wgpu::error::Result<Dispatch>,
) {
    let ds: Vec<Dispatch> = parts
        .iter()
        .map(|&(r0, n)| {
            let buf = gpu
                .upload(&format!("{label}.w.part"), &w[r0 * k * 2..(r0 + n) * k * 2])
                .unwrap();
            let rows = Bf16Rows {
                buffer: &buf,
                rows: n as u32,
                k: k as u32,
                row0: r0 as u32,
            };
            part(rows).unwrap()
        })
        .collect();
    gpu.run(label, &ds.iter().collect::<Vec<_>>()).unwrap();
}

/// Random MXFP4 expert weights, canonical blocks, with scale bytes drawn from `scales`.
pub fn random_experts(
    rng: &mut Rng,
    e: usize,
    rows: usize,
    k: usize,
    scales: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let nb = e * rows * k / 32;
    let blocks = rng.bytes(nb * 16);
    let s: Vec<u8> = (0..nb)
        .map(|_| scales[rng.below(scales.len() as u32) as usize])
        .collect();
    (blocks, s)
}

/// Random MXFP4 weights and f32 biases of both expert matrices of one layer.
pub struct RandomExperts {
    pub hidden: usize,
    pub inter: usize,
    pub gate_up: (Vec<u8>, Vec<u8>),
    pub down: (Vec<u8>, Vec<u8>),
    pub gate_up_bias: Vec<f32>,
    pub down_bias: Vec<f32>,
}

impl RandomExperts {
    /// `e` experts of hidden size `h` and intermediate size `i`, scale bytes from `scales`.
    pub fn new(rng: &mut Rng, e: usize, h: usize, i: usize, scales: &[u8]) -> Self {
        let gate_up = random_experts(rng, e, 2 * i, h, scales);
        let down = random_experts(rng, e, h, i, scales);
        RandomExperts {
            hidden: h,
            inter: i,
            gate_up,
            down,
            gate_up_bias: rng.vec_sym(e * 2 * i, 1.0),
            down_bias: rng.vec_sym(e * h, 1.0),
        }
    }

    pub fn as_ref(&self) -> ExpertsRef<'_> {
        ExpertsRef {
            hidden: self.hidden,
            inter: self.inter,
            gate_up_blocks: &self.gate_up.0,
            gate_up_scales: &self.gate_up.1,
            gate_up_bias: &self.gate_up_bias,
            down_blocks: &self.down.0,
            down_scales: &self.down.1,
            down_bias: &self.down_bias,
        }
    }
}

/// The heads of an attention test case: `n_heads` query heads sharing `n_kv_heads` KV heads of
/// `head_dim`, and the sliding `window` (0: full causal attention).
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub window: usize,
}

impl Heads {
    pub const fn new(n_heads: usize, n_kv_heads: usize, head_dim: usize, window: usize) -> Self {
        Heads {
            n_heads,
            n_kv_heads,
            head_dim,
            window,
        }
    }

    /// Floats per token in `qkv` (q, then k, then v).
    pub fn stride(&self) -> usize {
        (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
    }

    /// The reference's view of the same heads.
    pub fn shape(&self) -> AttentionShape {
        AttentionShape {
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            window: self.window,
        }
    }

    /// The kernels' layout with a cache of `capacity` positions, q, k and v packed per token.
    pub fn layout(&self, capacity: usize) -> AttentionLayout {
        AttentionLayout {
            n_heads: self.n_heads as u32,
            n_kv_heads: self.n_kv_heads as u32,
            head_dim: self.head_dim as u32,
            capacity: capacity as u32,
            window: self.window as u32,
            qkv_stride: self.stride() as u32,
        }
    }

    /// Packed `qkv` rows split into q [tokens, n_heads, d], k and v [tokens, n_kv_heads, d].
    pub fn split(&self, qkv: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (q_end, k_end) = (
            self.n_heads * self.head_dim,
            (self.n_heads + self.n_kv_heads) * self.head_dim,
        );
        let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for row in qkv.chunks_exact(self.stride()) {
            q.extend_from_slice(&row[..q_end]);
            k.extend_from_slice(&row[q_end..k_end]);
            v.extend_from_slice(&row[k_end..]);
        }
        (q, k, v)
    }
}

/// One layer's attention buffers in a test: the step uniform, `qkv` for up to `step_tokens`
/// tokens, the RoPE table and the KV caches in the device's element type.
pub struct AttnBuffers {
    pub layout: AttentionLayout,
    pub step: StepBuffer,
    pub qkv: GpuBuffer,
    pub rope: GpuBuffer,
    pub k_cache: GpuBuffer,
    pub v_cache: GpuBuffer,
}

impl AttnBuffers {
    pub fn new(
        gpu: &Gpu,
        heads: Heads,
        capacity: usize,
        step_tokens: usize,
        table: &[[f32; 2]],
    ) -> Self {
        let qkv_bytes = (step_tokens * heads.stride() * 4) as u64;
        let flat: Vec<f32> = table.iter().flatten().copied().collect();
        let cache_bytes = (heads.n_kv_heads * capacity * heads.head_dim) as u64
            * gpu.precision().kv.element_bytes();
        AttnBuffers {
            layout: heads.layout(capacity),
            step: StepBuffer::new(gpu, "step").unwrap(),
            qkv: gpu.storage("qkv", qkv_bytes).unwrap(),
            rope: up(gpu, "rope", &flat),
            k_cache: gpu.storage("k_cache", cache_bytes).unwrap(),
            v_cache: gpu.storage("v_cache", cache_bytes).unwrap(),
        }
    }

    pub fn attention(&self) -> AttentionStep<'_> {
        AttentionStep {
            layout: self.layout,
            step: &self.step,
            qkv: &self.qkv,
            k_cache: &self.k_cache,
            v_cache: &self.v_cache,
        }
    }

    /// Tokens `t0 .. t0 + tn` of the packed rows `qkv` into the qkv buffer, and the step set
    /// to them.
    pub fn load(&self, gpu: &Gpu, qkv: &[f32], t0: usize, tn: usize) {
        let stride = self.layout.qkv_stride as usize;
        let rows = &qkv[t0 * stride..(t0 + tn) * stride];
        gpu.write(&self.qkv, 0, bytemuck::cast_slice(rows));
        self.step.set_at(gpu, t0, tn, 0);
    }
}

/// Scale bytes as the checkpoints have them.
pub const REALISTIC_SCALES: [u8; 8] = [117, 118, 119, 120, 121, 122, 123, 124];
/// Near zero (subnormal weights) and at or above 129: large values must not overflow.
pub const ADVERSARIAL_SCALES: [u8; 10] = [0, 1, 2, 3, 127, 129, 131, 134, 137, 140];

/// A MoE test case: `tokens` tokens through `experts` experts of `hidden` and `inter`, `k` per
/// token.
#[derive(Clone, Debug)]
pub struct MoeCase {
    pub tokens: usize,
    pub hidden: usize,
    pub inter: usize,
    pub experts: usize,
    pub k: usize,
    /// swiglu_limit.
    pub limit: f32,
    /// E8M0 scale bytes to draw from.
    pub scales: Vec<u8>,
    /// Expert parts (first, count), as a lowered binding limit would split them.
    pub parts: Vec<(usize, usize)>,
    /// Router logits [tokens, experts] (ties, one dominant expert); None: random.
    pub logits: Option<Vec<f32>>,
    /// The MLP norm's gain is drawn from [-gain, gain].
    pub gain: f32,
}

/// A MoE case's random inputs.
pub struct MoeInputs {
    pub weights: RandomExperts,
    /// f32 [tokens, hidden].
    pub x: Vec<f32>,
    /// The MLP norm's gain, f32 [hidden].
    pub gain: Vec<f32>,
    /// f32 [tokens, experts].
    pub logits: Vec<f32>,
}

impl MoeCase {
    /// The clamp at 7, realistic scales, all experts in one part, random logits.
    pub fn new(tokens: usize, hidden: usize, inter: usize, experts: usize, k: usize) -> Self {
        MoeCase {
            tokens,
            hidden,
            inter,
            experts,
            k,
            limit: 7.0,
            scales: REALISTIC_SCALES.to_vec(),
            parts: vec![(0, experts)],
            logits: None,
            gain: 1.0,
        }
    }

    pub fn gain(self, gain: f32) -> Self {
        MoeCase { gain, ..self }
    }

    pub fn limit(self, limit: f32) -> Self {
        MoeCase { limit, ..self }
    }

    pub fn scales(self, scales: &[u8]) -> Self {
        let scales = scales.to_vec();
        MoeCase { scales, ..self }
    }

    pub fn parts(self, parts: &[(usize, usize)]) -> Self {
        let parts = parts.to_vec();
        MoeCase { parts, ..self }
    }

    pub fn logits(self, logits: Vec<f32>) -> Self {
        let logits = Some(logits);
        MoeCase { logits, ..self }
    }

    pub fn shape(&self) -> MoeShape {
        moe_shape(self.hidden, self.inter, self.experts, self.k)
    }

    /// Draws the inputs from `seed` in a fixed order: weights, x, gain, then logits unless the
    /// case fixes them.
    pub fn draw(&self, seed: u64) -> MoeInputs {
        let rng = &mut Rng::new(seed);
        let (t, h, e) = (self.tokens, self.hidden, self.experts);
        let weights = RandomExperts::new(rng, e, h, self.inter, &self.scales);
        let x = rng.vec_sym(t * h, 3.0);
        let gain = rng.vec_sym(h, self.gain);
        let logits = self
            .logits
            .clone()
            .unwrap_or_else(|| rng.vec_sym(t * e, 3.0));
        MoeInputs {
            weights,
            x,
            gain,
            logits,
        }
    }
}

pub fn moe_shape(hidden: usize, inter: usize, n_experts: usize, k: usize) -> MoeShape {
    MoeShape {
        hidden: hidden as u32,
        inter: inter as u32,
        n_experts: n_experts as u32,
        k: k as u32,
    }
}

/// Experts `e0 .. e0 + n` of both expert matrices, each in buffers of its own.
pub struct ExpertPartBuffers {
    e0: u32,
    n: u32,
    /// Blocks, scales, bias, and each row's largest scale byte (computed here, for the
    /// cooperative-matrix kernels: row_exp_mf4w's output, tested on its own).
    gate_up: [GpuBuffer; 4],
    down: [GpuBuffer; 4],
}

impl ExpertPartBuffers {
    /// Each of `parts` (first expert, count) in buffers of its own.
    pub fn upload_all(gpu: &Gpu, ex: &ExpertsRef<'_>, parts: &[(usize, usize)]) -> Vec<Self> {
        parts.iter().map(|&p| Self::upload(gpu, ex, p)).collect()
    }

    pub fn upload(gpu: &Gpu, ex: &ExpertsRef<'_>, (e0, n): (usize, usize)) -> Self {
        let (h, i) = (ex.hidden, ex.inter);
        // Expert `e` holds `rows` rows of `cols` inputs: per = rows * cols weights.
        let matrix =
            |name: &str, blocks: &[u8], scales: &[u8], bias: &[f32], rows: usize, cols: usize| {
                let per = rows * cols;
                let part_scales = &scales[e0 * per / 32..(e0 + n) * per / 32];
                let mut row_exp: Vec<u8> = (part_scales.chunks(cols / 32))
                    .map(|r| *r.iter().max().unwrap())
                    .collect();
                row_exp.resize(row_exp.len().div_ceil(4) * 4, 0);
                [
                    gpu.upload(
                        &format!("{name}.blocks"),
                        &blocks[e0 * per / 2..(e0 + n) * per / 2],
                    )
                    .unwrap(),
                    gpu.upload(&format!("{name}.scales"), part_scales).unwrap(),
                    up(
                        gpu,
                        &format!("{name}.bias"),
                        &bias[e0 * rows..(e0 + n) * rows],
                    ),
                    gpu.upload(&format!("{name}.row_exp"), &row_exp).unwrap(),
                ]
            };
        ExpertPartBuffers {
            e0: e0 as u32,
            n: n as u32,
            gate_up: matrix(
                "gate_up",
                ex.gate_up_blocks,
                ex.gate_up_scales,
                ex.gate_up_bias,
                2 * i,
                h,
            ),
            down: matrix("down", ex.down_blocks, ex.down_scales, ex.down_bias, h, i),
        }
    }

    pub fn gate_up(&self) -> Experts<'_> {
        self.experts(&self.gate_up)
    }

    pub fn down(&self) -> Experts<'_> {
        self.experts(&self.down)
    }

    /// Each gate_up row's largest scale byte, u8 in words.
    pub fn gate_up_row_exps(&self) -> &GpuBuffer {
        &self.gate_up[3]
    }

    /// Each down row's largest scale byte, u8 in words.
    pub fn down_row_exps(&self) -> &GpuBuffer {
        &self.down[3]
    }

    fn experts<'a>(&self, [blocks, scales, bias, _]: &'a [GpuBuffer; 4]) -> Experts<'a> {
        Experts {
            blocks,
            scales,
            bias,
            e0: self.e0,
            n_part: self.n,
        }
    }
}

/// (atol, rtol) for attention outputs. f16 cache: k and v rounded to 11 significant bits
/// (relative 2^-11 each); with |q|, |k| and |v| of O(1) over 16-64 dims that moves outputs by
/// well under 3e-3.
pub fn attention_tolerance(gpu: &Gpu) -> (f32, f32) {
    if gpu.precision().kv == KvChoice::F16 {
        (3e-3, 3e-3)
    } else {
        (2e-5, 1e-4)
    }
}

/// The row shift row_shift_f32 computes: the smallest s >= 0 with max |x| 2^-s < 2^15.
pub fn x_shift(x: &[f32]) -> u32 {
    let m = x.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let mut s = 0;
    while m * 2f64.powi(-s) >= 32768.0 {
        s += 1;
    }
    s as u32
}

/// How far an activation held as two f16 (coop_tile: hi = f16(x), lo = f16(x - hi)) may be
/// from x, relative: WGSL lets each conversion land on either neighbour, one spacing, so
/// |x - hi| <= 2^-10 |x| and lo is off by 2^-10 of that: 2^-20.
pub const F16_REL: f64 = 1.0 / 1_048_576.0;
/// f16's subnormal spacing, 2^-24: the absolute error of a conversion below 2^-14 (lo, and
/// the weights of rows far below their row's largest).
pub const F16_TINY: f64 = 1.0 / 16_777_216.0;

/// Per output of one token's MoE block, [`MoeBounds::x`]: (magnitude, f16 bound); and the
/// magnitude of each slot's act, [`MoeBounds::act`].
///
/// magnitude is the sum of the magnitudes of everything summed into it: |x| + sum_j w_j
/// (sum_i |W2_ri| (|act_ji| + err_ji) + |b2|), where err_ji bounds how far act moves per unit
/// of relative error in its own sums (|d swiglu/dg| <= 1.1 and |d swiglu/du| =
/// |g sigmoid(1.702 g)|, times the magnitudes of the gate and up sums). An f32 kernel lands
/// within a small multiple of 2^-24 x terms x magnitude of the f64 result.
///
/// The f16 bound is what the cooperative-matrix kernels add (moe_prefill_coop): each
/// activation held as two f16 after its token's shift 2^-s (relative F16_REL, or F16_TINY
/// 2^s absolute where lo is below f16's normals), and each weight of a block more than 2^23 below its row's
/// largest scale off by up to F16_TINY of that row scale; the gate and up errors carried
/// into act by the same derivatives, then, where down is f16 too (`f16_down`), act rounded
/// again and down's own weights.
pub fn moe_error_bounds(
    x: &[f32],
    gain: &[f32],
    logits: &[f32],
    k: usize,
    limit: f32,
    ex: &ExpertsRef<'_>,
    f16_down: bool,
) -> MoeBounds {
    use oss_wgpu::checkpoint::mxfp4::decode_f64;
    let (h, i) = (ex.hidden, ex.inter);
    let xn = r::rmsnorm_f32(x, gain, 1e-5);
    let (ids, weights) = r::router_topk(logits, k);
    // A weight row, and the largest error f16 storage adds to each of its weights.
    let row = |blocks: &[u8], scales: &[u8], r: usize, n: usize| {
        let nb = n / 32;
        let s = &scales[r * nb..(r + 1) * nb];
        let w = decode_f64(&blocks[r * nb * 16..(r + 1) * nb * 16], s);
        let top = *s.iter().max().unwrap() as i32;
        let flush: Vec<f64> = (0..n)
            .map(|c| {
                let d = s[c / 32] as i32 - top;
                if d < -23 {
                    F16_TINY * 2f64.powi(top - 127)
                } else {
                    0.0
                }
            })
            .collect();
        (w, flush)
    };
    let rounded = |v: f64| F16_REL * v.abs() + F16_TINY;
    let shift = 2f64.powi(x_shift(&xn) as i32);
    let rounded_x = |v: f64| F16_REL * v.abs() + F16_TINY * shift;
    let mut out: Vec<(f64, f64)> = x.iter().map(|&v| (v.abs() as f64, 0.0)).collect();
    let mut act_magnitude = Vec::with_capacity(k * i);
    for (&e, &w) in ids.iter().zip(&weights) {
        let mut act = Vec::with_capacity(i);
        for j in 0..i {
            let sums = |r: usize| {
                let (wr, flush) = row(ex.gate_up_blocks, ex.gate_up_scales, e * 2 * i + r, h);
                let b = ex.gate_up_bias[e * 2 * i + r] as f64;
                let v: f64 = wr.iter().zip(&xn).map(|(&a, &q)| a * q as f64).sum::<f64>() + b;
                let terms = wr.iter().zip(&xn).zip(&flush);
                let m: f64 = terms
                    .clone()
                    .map(|((&a, &q), _)| (a * q as f64).abs())
                    .sum::<f64>()
                    + b.abs();
                let f16: f64 = terms
                    .map(|((&a, &q), &f)| a.abs() * rounded_x(q as f64) + f * (q as f64).abs())
                    .sum();
                (v, m, f16)
            };
            let ((g, gm, gf), (u, um, uf)) = (sums(2 * j), sums(2 * j + 1));
            let value = r::swiglu(g, u, limit as f64).abs();
            let gs = g.min(limit as f64);
            let dg = 1.1 * (u.clamp(-(limit as f64), limit as f64) + 1.0).abs();
            let du = (gs / (1.0 + (-1.702 * gs).exp())).abs();
            // (magnitude, f16 error, |act|) of act j.
            act.push((value + dg * gm + du * um, dg * gf + du * uf, value));
        }
        act_magnitude.extend(act.iter().map(|&(m, _, _)| m as f32));
        for (r, o) in out.iter_mut().enumerate() {
            let (wr, flush) = row(ex.down_blocks, ex.down_scales, e * h + r, i);
            let terms = wr.iter().zip(&act).zip(&flush);
            let s: f64 = terms.clone().map(|((&a, &(m, _, _)), _)| a.abs() * m).sum();
            let f16: f64 = terms
                .map(|((&a, &(_, err, v)), &f)| {
                    if f16_down {
                        a.abs() * (err + rounded(v + err)) + f * (v + err)
                    } else {
                        a.abs() * err
                    }
                })
                .sum();
            o.0 += w as f64 * (s + (ex.down_bias[e * h + r] as f64).abs());
            o.1 += w as f64 * f16;
        }
    }
    MoeBounds {
        x: out.into_iter().map(|(m, f)| (m as f32, f as f32)).collect(),
        act: act_magnitude,
    }
}

/// What [`moe_error_bounds`] returns for one token.
pub struct MoeBounds {
    /// Per output row: (magnitude, f16 bound).
    pub x: Vec<(f32, f32)>,
    /// [k, inter]: the magnitude of each slot's act (in slot order).
    pub act: Vec<f32>,
}
