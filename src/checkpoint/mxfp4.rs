//! The MXFP4 codec on the CPU: exact decoding (the reference every GPU kernel is tested
//! against) and the quantizer that turns BF16 expert weights into MXFP4 on load.
//!
//! Format (OCP MX, as gpt-oss stores it): 32 elements along the input dimension share one E8M0
//! scale byte s meaning 2^(s - 127); each element is an E2M1 nibble; byte j of a 16-byte block
//! holds element 2j in its low nibble and element 2j + 1 in its high nibble.

/// E2M1 values by nibble: bit 3 is the sign, bits 2-1 the exponent (bias 1), bit 0 the mantissa.
pub const LUT: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// Elements per block, bytes per block.
pub const BLOCK: usize = 32;
pub const BLOCK_BYTES: usize = 16;

/// The exact value of `nibble` under scale byte `scale`, in f64 (no rounding happens: every
/// E2M1 value times a power of two in [2^-127, 2^128] is exact in f64).
pub fn value_f64(nibble: u8, scale: u8) -> f64 {
    LUT[(nibble & 0xf) as usize] as f64 * 2f64.powi(scale as i32 - 127)
}

/// The value as the nearest f32: exact where it is a finite f32 (subnormals included), and
/// +-inf where its magnitude is above the f32 range.
pub fn value_f32(nibble: u8, scale: u8) -> f32 {
    value_f64(nibble, scale) as f32
}

/// Decodes `blocks` ([rows, K/32, 16] bytes) with `scales` ([rows, K/32] bytes) into f32
/// [rows, K]. Leading dimensions may be flattened into rows. Each value is the nearest f32 of
/// the exact f64 value (exact where finite, +-inf above the f32 range).
pub fn decode(blocks: &[u8], scales: &[u8]) -> Vec<f32> {
    decode_f64(blocks, scales)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// Like [`decode`] but in f64, for references that accumulate in f64.
pub fn decode_f64(blocks: &[u8], scales: &[u8]) -> Vec<f64> {
    assert_eq!(
        blocks.len(),
        scales.len() * BLOCK_BYTES,
        "blocks and scales disagree"
    );
    let mut out = Vec::with_capacity(scales.len() * BLOCK);
    for (block, &s) in blocks.chunks_exact(BLOCK_BYTES).zip(scales) {
        for &byte in block {
            out.push(value_f64(byte & 0xf, s));
            out.push(value_f64(byte >> 4, s));
        }
    }
    out
}

/// The nibble nearest to `x` (already divided by the block scale), ties to the even code, and
/// saturating at +-6.
fn nearest_nibble(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 8u8 } else { 0 };
    let a = x.abs();
    // Midpoints between consecutive magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6; at a midpoint the
    // even code (mantissa bit 0) wins, as in IEEE round-to-nearest-even.
    let code = if a <= 0.25 {
        0
    } else if a < 0.75 {
        1
    } else if a <= 1.25 {
        2
    } else if a < 1.75 {
        3
    } else if a <= 2.5 {
        4
    } else if a < 3.5 {
        5
    } else if a <= 5.0 {
        6
    } else {
        7
    };
    if code == 0 {
        // -0.0 and +0.0 both encode as +0: the sign of a zero carries no information here.
        0
    } else {
        sign | code
    }
}

/// Quantizes one block of 32 values: scale exponent floor(log2(amax)) - 2 (so the largest
/// magnitude lands in [4, 8) before rounding), round to nearest E2M1. An all-zero block gets
/// scale byte 0. Returns the 16 packed bytes and the scale byte.
pub fn quantize_block(values: &[f32]) -> ([u8; BLOCK_BYTES], u8) {
    assert_eq!(values.len(), BLOCK);
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut bytes = [0u8; BLOCK_BYTES];
    if amax == 0.0 || !amax.is_finite() {
        return (bytes, 0);
    }
    let exp = (amax as f64).log2().floor() as i32 - 2;
    let scale = (exp + 127).clamp(0, 254);
    let inv = 2f64.powi(127 - scale);
    for (j, pair) in values.chunks_exact(2).enumerate() {
        let lo = nearest_nibble((pair[0] as f64 * inv) as f32);
        let hi = nearest_nibble((pair[1] as f64 * inv) as f32);
        bytes[j] = lo | (hi << 4);
    }
    (bytes, scale as u8)
}

/// Quantizes rows of length `k` (a multiple of 32) into blocks [rows, k/32, 16] and scales
/// [rows, k/32].
pub fn quantize(values: &[f32], k: usize) -> (Vec<u8>, Vec<u8>) {
    assert!(k % BLOCK == 0 && values.len() % k == 0);
    let n_blocks = values.len() / BLOCK;
    let mut blocks = Vec::with_capacity(n_blocks * BLOCK_BYTES);
    let mut scales = Vec::with_capacity(n_blocks);
    for chunk in values.chunks_exact(BLOCK) {
        let (b, s) = quantize_block(chunk);
        blocks.extend_from_slice(&b);
        scales.push(s);
    }
    (blocks, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_nibble_is_the_even_element() {
        // Byte 0x71: low nibble 1 (0.5), high nibble 7 (6.0); scale 127 is 2^0.
        let mut block = [0u8; 16];
        block[0] = 0x71;
        block[15] = 0xa2; // element 30 = 1.0, element 31 = -1.0
        let v = decode(&block, &[127]);
        assert_eq!(v[0], 0.5);
        assert_eq!(v[1], 6.0);
        assert_eq!(v[30], 1.0);
        assert_eq!(v[31], -1.0);
        assert!(v[2..30].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn extremes_are_exact_or_infinite() {
        assert_eq!(value_f32(1, 0), f32::from_bits(1 << 21)); // 2^-128, subnormal
        assert_eq!(value_f32(3, 254), 1.5 * 2f32.powi(127));
        assert_eq!(value_f32(4, 254), f32::INFINITY);
        assert_eq!(value_f32(12, 254), f32::NEG_INFINITY);
    }

    #[test]
    fn quantize_round_trips_canonical_blocks() {
        // A block whose largest magnitude is 4 or 6 times its scale comes back bit-identical.
        let mut block = [0u8; 16];
        for (j, b) in block.iter_mut().enumerate() {
            *b = ((j * 5 + 3) % 16) as u8 | ((((j * 7) % 16) as u8) << 4);
        }
        block[3] = 0x7f; // contains 6 and -6
        for scale in [1u8, 100, 127, 140, 200] {
            let values = decode(&block, &[scale]);
            let (b, s) = quantize_block(&values);
            assert_eq!(s, scale);
            // -0 nibbles (8) come back as +0 (0): compare decoded values instead of bytes there.
            assert_eq!(decode(&b, &[s]), values);
        }
    }

    #[test]
    fn quantize_rounds_to_nearest_even() {
        let mut v = [0f32; 32];
        v[0] = 4.0; // sets the scale to 2^0
        v[1] = 2.5; // tie between 2 and 3: 2 (even)
        v[2] = 5.0; // tie between 4 and 6: 4
        v[3] = 7.9; // saturates to 6
        v[4] = -0.75; // tie between 0.5 and 1: 1
        let (b, s) = quantize_block(&v);
        assert_eq!(s, 127);
        let d = decode(&b, &[s]);
        assert_eq!(&d[..5], &[4.0, 2.0, 4.0, 6.0, -1.0]);
    }
}
