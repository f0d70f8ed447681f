//! The MoE router of one token in one dispatch: the RMSNorm (xn, the experts' input) and the
//! logits over many workgroups, then, in the workgroup that finishes last, the top-k and the
//! softmax over the k: route = [ids[k], weights[k]]. (OSS_WGPU_TUNE_ROUTER=split ranks them in
//! router_topk_f32's dispatch instead, as before change 37.)

use super::moe::check_routing;
use super::router_topk_f32::RouterTopK;
use super::Bf16Rows;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "router_f32_bf16w",
    params { n_experts: u32, k8: u32, k: u32, eps: f32 }
    bindings {
        w: Read, x: Read, gain: Read, bias: Read, xn: ReadWrite, logits: ReadWrite,
        route: ReadWrite,
    }
}

/// Invocations per workgroup: four groups of 32.
const WG: u32 = 128;
/// Router rows (experts) per workgroup: gpt-oss-20b's 32 on 8 workgroups, 120b's 128 on 32.
const ROWS_PER_WG: u32 = 4;
/// Workgroup memory besides the staged x: the reduction scratch, with room to spare.
const RESERVE_BYTES: u64 = 1024;

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
    /// [n_experts + 1]: the logits (f32), then the workgroups' counter (u32, 0 between
    /// dispatches: a new buffer is zeroed).
    pub logits: &'a GpuBuffer,
    /// [2 k]: ids, then weights (f32 bits).
    pub route: &'a GpuBuffer,
}

impl Router<'_> {
    /// The router's dispatch (two with OSS_WGPU_TUNE_ROUTER=split: the logits, then the
    /// top-k's).
    pub fn dispatches(&self, gpu: &Gpu) -> Result<Vec<Dispatch>> {
        let w = &self.w;
        w.need_whole(SHADER)?;
        let (e, k) = (w.rows, self.k);
        check_routing(SHADER, e, k)?;
        if e > WG {
            return Err(Error::Shape {
                what: format!("{SHADER}: experts"),
                expected: format!("at most {WG} (an invocation each in the top-k)"),
                actual: e.to_string(),
            });
        }
        w.need_k_multiple(SHADER, 8)?;
        w.need(SHADER)?;
        let h = w.k as u64 * 4;
        need(&[
            (self.x, h),
            (self.gain, h),
            (self.bias, e as u64 * 4),
            (self.xn, h),
            (self.logits, (e as u64 + 1) * 4),
            (self.route, 2 * k as u64 * 4),
        ])?;
        let split = gpu.tuning().router_split;
        // x * gain in workgroup memory beside the reduction scratch.
        let staged = w.k as u64 * 4;
        let room = gpu.limits().max_compute_workgroup_storage_size as u64;
        if staged + RESERVE_BYTES > room {
            return Err(Error::Shape {
                what: format!("{SHADER}: hidden size staged in workgroup memory"),
                expected: format!("at most {} floats", (room - RESERVE_BYTES) / 4),
                actual: w.k.to_string(),
            });
        }
        let constants = [
            ("WG", WG as f64),
            ("ROWS_PER_WG", ROWS_PER_WG as f64),
            ("XG_LEN", w.k as f64),
            ("TOPK", if split { 0.0 } else { 1.0 }),
        ];
        let params = Params {
            n_experts: e,
            k8: w.k / 8,
            k,
            eps: self.eps,
        };
        let logits = Bindings {
            w: w.buffer.binding(),
            x: self.x.binding(),
            gain: self.gain.binding(),
            bias: self.bias.binding(),
            xn: self.xn.binding(),
            logits: self.logits.binding(),
            route: self.route.binding(),
        }
        .build(
            gpu,
            &constants,
            &params,
            &self.route.label,
            [e.div_ceil(ROWS_PER_WG), 1, 1],
        )?;
        if !split {
            return Ok(vec![logits]);
        }
        let topk = RouterTopK {
            n_experts: e,
            k,
            logits: self.logits,
            route: self.route,
        }
        .dispatch(gpu)?;
        Ok(vec![logits, topk])
    }
}
