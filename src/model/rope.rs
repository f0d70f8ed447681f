//! YaRN rotary embedding tables, computed on the CPU once per context length.
//!
//! The formulas and the f32 rounding steps follow Hugging Face transformers'
//! `_compute_yarn_parameters` (with `truncate: false`, as gpt-oss configures it) and the gpt-oss
//! rotary module: inv_freq in f32, angle = f32(position * inv_freq), cos and sin of that angle
//! times the attention factor ("concentration") 0.1 ln(factor) + 1. Computing the table on the
//! CPU keeps large angles exact: GPU sin/cos are only accurate near [-pi, pi].

use crate::config::ModelConfig;

/// YaRN's per-dimension inverse frequencies (head_dim / 2 of them), rounded as transformers
/// rounds them in f32.
pub fn inv_freq(config: &ModelConfig) -> Vec<f32> {
    let dim = config.head_dim;
    let half = dim / 2;
    let base = config.rope_theta;
    let rs = &config.rope_scaling;
    let factor = rs.factor as f32;

    // Dimension at which a wavelength makes `rotations` turns over the original context.
    let correction_dim = |rotations: f64| {
        dim as f64
            * (rs.original_max_position_embeddings as f64
                / (rotations * 2.0 * std::f64::consts::PI))
                .ln()
            / (2.0 * base.ln())
    };
    let mut low = correction_dim(rs.beta_fast);
    let mut high = correction_dim(rs.beta_slow);
    if rs.truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min(dim as f64 - 1.0);
    if low == high {
        high += 0.001;
    }
    let span = (high - low) as f32;
    (0..half)
        .map(|i| {
            let exponent = (2 * i) as f32 / dim as f32;
            let pos_freq = (base.powf(exponent as f64)) as f32;
            let extrapolation = 1.0f32 / pos_freq;
            let interpolation = 1.0f32 / (factor * pos_freq);
            let ramp = ((i as f32 - low as f32) / span).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0f32 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect()
}

/// YaRN's attention factor, applied to both cos and sin (so q.k scales by its square).
pub fn attention_factor(config: &ModelConfig) -> f32 {
    let factor = config.rope_scaling.factor;
    if factor <= 1.0 {
        1.0
    } else {
        (0.1 * factor.ln() + 1.0) as f32
    }
}

/// (cos, sin) * attention factor for positions 0..positions, [positions, head_dim / 2].
pub fn table(config: &ModelConfig, positions: usize) -> Vec<[f32; 2]> {
    let inv = inv_freq(config);
    let scale = attention_factor(config);
    let mut out = Vec::with_capacity(positions * inv.len());
    for p in 0..positions {
        for &f in &inv {
            let angle = (p as f32 * f) as f64;
            out.push([angle.cos() as f32 * scale, angle.sin() as f32 * scale]);
        }
    }
    out
}
