//! The MXFP4 decode kernel against the exact CPU codec.

mod common;

use common::{paths, Rng};
use oss_wgpu::checkpoint::mxfp4;
use oss_wgpu::gpu::Gpu;
use oss_wgpu::kernels::dequant_f32_mf4w;

/// Runs the decode kernel on the GPU and returns the f32 values (as bits, to compare exactly).
fn gpu_decode(gpu: &Gpu, blocks: &[u8], scales: &[u8]) -> Vec<u32> {
    let n_blocks = scales.len() as u32;
    let b = gpu.upload("test.blocks", blocks).unwrap();
    let s = gpu.upload("test.scales", scales).unwrap();
    let out = gpu.storage("test.out", n_blocks as u64 * 32 * 4).unwrap();
    gpu.poison(&out);
    let d = dequant_f32_mf4w::Dequant {
        blocks: &b,
        scales: &s,
        out: &out,
        n_blocks,
    }
    .dispatch(gpu)
    .unwrap();
    gpu.run("dequant", &[&d]).unwrap();
    gpu.read_u32(&out).unwrap()
}

/// Every nibble under every valid scale byte: the exact value where it is a finite f32
/// (subnormals included), +-inf above the f32 range, never NaN.
#[test]
fn every_nibble_and_scale_is_exact() {
    // One block per scale byte 0..=254; each block holds all 16 nibbles twice.
    let mut blocks = Vec::new();
    let mut scales = Vec::new();
    for s in 0u8..=254 {
        for j in 0..16u8 {
            blocks.push(j | (((j + 5) % 16) << 4));
        }
        scales.push(s);
    }
    for gpu in paths() {
        let got = gpu_decode(&gpu, &blocks, &scales);
        for (b, &s) in scales.iter().enumerate() {
            for j in 0..16usize {
                for (k, nibble) in [(2 * j, j as u8), (2 * j + 1, ((j as u8) + 5) % 16)] {
                    let exact = mxfp4::value_f64(nibble, s);
                    let g = f32::from_bits(got[32 * b + k]);
                    assert!(!g.is_nan(), "NaN for nibble {nibble} scale {s}");
                    if exact.abs() > f32::MAX as f64 {
                        assert_eq!(
                            g,
                            exact.signum() as f32 * f32::INFINITY,
                            "nibble {nibble} scale {s}"
                        );
                    } else {
                        assert_eq!(
                            g as f64,
                            exact,
                            "nibble {nibble} scale {s} on {}",
                            gpu.adapter_name()
                        );
                        assert_eq!(g.is_sign_negative(), nibble >= 8, "sign of nibble {nibble}");
                    }
                }
            }
        }
    }
}

/// The nibble order pinned by hand: the low nibble is the even element.
#[test]
fn low_nibble_is_the_even_element() {
    let mut block = vec![0u8; 16];
    block[0] = 0x71; // element 0 = 0.5, element 1 = 6.0
    block[1] = 0x9c; // element 2 = -2.0, element 3 = -0.5
    block[15] = 0x2a; // element 30 = -1.0, element 31 = 1.0
    let want: Vec<f32> = {
        let mut v = vec![0f32; 32];
        v[0] = 0.5 * 4.0;
        v[1] = 6.0 * 4.0;
        v[2] = -2.0 * 4.0;
        v[3] = -0.5 * 4.0;
        v[30] = -4.0; // -1.0 at scale 4
        v[31] = 1.0 * 4.0;
        v
    };
    for gpu in paths() {
        let got = gpu_decode(&gpu, &block, &[129]); // 2^(129-127) = 4
        let got: Vec<f32> = got.iter().map(|&b| f32::from_bits(b)).collect();
        assert_eq!(got, want);
    }
}

/// Random tensors in the real layout [E, N, K/32, 16] with a partial last workgroup.
#[test]
fn random_tensors_in_the_real_layout() {
    let mut rng = Rng::new(7);
    // E=3, N=37, K=96: 333 blocks, not a multiple of the 64-block workgroup.
    let (e, n, k) = (3usize, 37usize, 96usize);
    let n_blocks = e * n * k / 32;
    let blocks = rng.bytes(n_blocks * 16);
    // Scales around real checkpoints' range (about 2^-10..2^2) plus a few extremes.
    let scales: Vec<u8> = (0..n_blocks)
        .map(|i| match i % 50 {
            0 => 0,
            1 => 254,
            _ => 115 + rng.below(15) as u8,
        })
        .collect();
    let want = mxfp4::decode(&blocks, &scales);
    for gpu in paths() {
        let got = gpu_decode(&gpu, &blocks, &scales);
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            // Bit-exact, signed zeros included.
            assert_eq!(
                g,
                w.to_bits(),
                "index {i}: got {}, want {w}",
                f32::from_bits(g)
            );
        }
    }
}
