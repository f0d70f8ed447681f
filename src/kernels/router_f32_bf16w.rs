//! The MoE router of one token in one dispatch: the MLP RMSNorm (xn, the experts' input), the
//! logits, their top-k and the softmax over the k: route = [ids[k], weights[k]].

use super::moe::check_routing;
use super::Bf16Rows;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "router_f32_bf16w",
    params { n_experts: u32, k8: u32, k: u32, eps: f32 }
    bindings { w: Read, x: Read, gain: Read, bias: Read, xn: ReadWrite, route: ReadWrite }
}

/// Workgroup memory besides the staged x and the reduction scratch: logits and the chosen k.
const RESERVE_BYTES: u64 = 2048;

/// `route` from `x` through RMSNorm (`gain`, `eps`) and the router `w` with `bias`.
pub struct Router<'a> {
    /// bf16 [n_experts, hidden]: the whole matrix, in one buffer (its rows are the experts).
    pub w: Bf16Rows<'a>,
    /// Experts per token.
    pub k: u32,
    /// The residual stream, f32 [hidden].
    pub x: &'a GpuBuffer,
    /// The MLP RMSNorm's gain f32 [hidden] and eps.
    pub gain: &'a GpuBuffer,
    pub eps: f32,
    /// f32 [n_experts].
    pub bias: &'a GpuBuffer,
    /// The normalised x, f32 [hidden].
    pub xn: &'a GpuBuffer,
    /// [2 k]: ids, then weights (f32 bits).
    pub route: &'a GpuBuffer,
}

impl Router<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        let w = &self.w;
        if w.row0 != 0 {
            return Err(Error::Shape {
                what: format!("{SHADER}: '{}' first row", w.buffer.label),
                expected: "0 (the whole router matrix in one buffer)".into(),
                actual: w.row0.to_string(),
            });
        }
        let (e, k) = (w.rows, self.k);
        check_routing(SHADER, e, k)?;
        w.need_k_multiple(SHADER, 8)?;
        w.need(SHADER)?;
        let h = w.k as u64 * 4;
        need(&[
            (self.x, h),
            (self.gain, h),
            (self.bias, e as u64 * 4),
            (self.xn, h),
            (self.route, 2 * k as u64 * 4),
        ])?;
        // x * gain in workgroup memory beside the logits, the top-k and the reduction scratch.
        let lim = gpu.limits();
        let wg = if lim.max_compute_invocations_per_workgroup >= 512
            && lim.max_compute_workgroup_size_x >= 512
        {
            512
        } else {
            256
        };
        let staged = w.k as u64 * 4;
        let room = gpu.limits().max_compute_workgroup_storage_size as u64;
        if staged + RESERVE_BYTES + wg as u64 * 4 > room {
            return Err(Error::Shape {
                what: format!("{SHADER}: hidden size staged in workgroup memory"),
                expected: format!(
                    "at most {} floats",
                    (room - RESERVE_BYTES - wg as u64 * 4) / 4
                ),
                actual: w.k.to_string(),
            });
        }
        let constants = [("WG", wg as f64), ("XG_LEN", w.k as f64)];
        let params = Params {
            n_experts: e,
            k8: w.k / 8,
            k,
            eps: self.eps,
        };
        Bindings {
            w: w.buffer.binding(),
            x: self.x.binding(),
            gain: self.gain.binding(),
            bias: self.bias.binding(),
            xn: self.xn.binding(),
            route: self.route.binding(),
        }
        .build(gpu, &constants, &params, &self.route.label, [1, 1, 1])
    }
}
