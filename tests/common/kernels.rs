//! What the kernel tests (tests/kernels.rs, tests/prefill.rs) share: poisoned outputs, weight
//! matrices and expert tensors split into parts as a lowered binding limit splits them, KV
//! caches in the device's element type, and the f16-cache tolerance.

use oss_wgpu::gpu::{Gpu, GpuBuffer, KvChoice};
use oss_wgpu::kernels::moe::Experts;
use oss_wgpu::reference::{f32_to_bf16, ExpertsRef};

use super::Rng;

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

/// One buffer per (first row, rows) part of the bf16 [_, k] matrix `w`.
pub fn row_parts(gpu: &Gpu, w: &[u8], k: usize, parts: &[(usize, usize)]) -> Vec<GpuBuffer> {
    parts
        .iter()
        .map(|&(r0, n)| {
            gpu.upload("w.part", &w[r0 * k * 2..(r0 + n) * k * 2])
                .unwrap()
        })
        .collect()
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

/// Experts `e0 .. e0 + n` of both expert matrices, each in buffers of its own.
pub struct ExpertPartBuffers {
    e0: u32,
    n: u32,
    /// Blocks, scales, bias.
    gate_up: [GpuBuffer; 3],
    down: [GpuBuffer; 3],
}

impl ExpertPartBuffers {
    pub fn upload(gpu: &Gpu, ex: &ExpertsRef<'_>, (e0, n): (usize, usize)) -> Self {
        let (h, i) = (ex.hidden, ex.inter);
        // Expert `e` holds `rows` rows of `cols` inputs: per = rows * cols weights.
        let matrix =
            |name: &str, blocks: &[u8], scales: &[u8], bias: &[f32], rows: usize, cols: usize| {
                let per = rows * cols;
                [
                    gpu.upload(
                        &format!("{name}.blocks"),
                        &blocks[e0 * per / 2..(e0 + n) * per / 2],
                    )
                    .unwrap(),
                    gpu.upload(
                        &format!("{name}.scales"),
                        &scales[e0 * per / 32..(e0 + n) * per / 32],
                    )
                    .unwrap(),
                    up(
                        gpu,
                        &format!("{name}.bias"),
                        &bias[e0 * rows..(e0 + n) * rows],
                    ),
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

    fn experts<'a>(&self, [blocks, scales, bias]: &'a [GpuBuffer; 3]) -> Experts<'a> {
        Experts {
            blocks,
            scales,
            bias,
            e0: self.e0,
            n_part: self.n,
        }
    }
}

/// K and V caches of [kv_heads, capacity, head_dim] in the device's KV element type.
pub fn kv_caches(gpu: &Gpu, kv_heads: usize, capacity: usize, d: usize) -> (GpuBuffer, GpuBuffer) {
    let bytes = (kv_heads * capacity * d) as u64 * gpu.precision().kv.element_bytes();
    (
        gpu.storage("k_cache", bytes).unwrap(),
        gpu.storage("v_cache", bytes).unwrap(),
    )
}

/// The [positions, head_dim / 2] (cos, sin) table as one buffer.
pub fn rope_buffer(gpu: &Gpu, table: &[[f32; 2]]) -> GpuBuffer {
    let flat: Vec<f32> = table.iter().flatten().copied().collect();
    up(gpu, "rope", &flat)
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
