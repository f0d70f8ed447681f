//! One pass of 16-byte loads over a large buffer: the bandwidth a WGSL kernel reaches here.

use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, GpuBuffer};

kernel! {
    shader: "bandwidth_read",
    params { n_vec4: u32, stride: u32, _pad0: u32, _pad1: u32 }
    bindings { data: Read, sink: ReadWrite }
}

const WG: u32 = 256;

/// Reads all of `data` (a multiple of 16 bytes) with `workgroups` workgroups.
pub struct BandwidthRead<'a> {
    pub data: &'a GpuBuffer,
    /// [256] u32 the kernel writes so that the loads are not optimised away.
    pub sink: &'a GpuBuffer,
    pub workgroups: u32,
}

impl BandwidthRead<'_> {
    pub fn dispatch(&self, gpu: &Gpu) -> Result<Dispatch> {
        need(&[(self.sink, 256 * 4)])?;
        let params = Params {
            n_vec4: (self.data.bytes / 16) as u32,
            stride: self.workgroups * WG,
            ..Default::default()
        };
        Bindings {
            data: self.data.binding(),
            sink: self.sink.binding(),
        }
        .build(gpu, &[], &params, &self.data.label, [self.workgroups, 1, 1])
    }
}
