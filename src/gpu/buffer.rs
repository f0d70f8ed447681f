//! Labelled GPU buffers: creation within the adapter's limits, upload, and read-back.

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// A storage buffer with the label every error and GPU capture names it by.
pub struct GpuBuffer {
    pub buffer: wgpu::Buffer,
    pub label: String,
    /// Logical size in bytes (the allocation is rounded up to a multiple of 4).
    pub bytes: u64,
}

impl GpuBuffer {
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer.as_entire_binding()
    }
}

/// A mapped range's address, shared by the threads that fill disjoint parts of it.
struct SharedPtr(*mut u8);
// SAFETY: only used inside upload_parallel's thread scope, for disjoint writes.
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// Through a method, so that closures capture the wrapper (Sync), not the raw pointer.
    fn get(&self) -> *mut u8 {
        self.0
    }
}

/// Smallest share of an upload worth a thread of its own.
const UPLOAD_PIECE: usize = 4 << 20;

/// Threads for one upload: $OSS_WGPU_UPLOAD_THREADS, else one per core up to 16 (memory
/// bandwidth, not cores, limits a copy beyond that).
fn upload_threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("OSS_WGPU_UPLOAD_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(16)))
    })
}

fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(4).max(1) * 4
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl Gpu {
    /// Checks that one binding of `bytes` fits this device; every weight piece passes here.
    pub fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        let limit = self.max_binding().min(self.max_buffer());
        if padded(bytes) > limit {
            return Err(Error::BindingTooLarge {
                label: label.to_string(),
                bytes,
                limit,
            });
        }
        Ok(())
    }

    /// A zero-initialised storage buffer that can be bound whole.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<GpuBuffer> {
        self.check_binding(label, bytes)?;
        let size = padded(bytes);
        let buffer = self.scoped(label, size, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: STORAGE,
                mapped_at_creation: false,
            })
        })?;
        self.allocated
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        Ok(GpuBuffer {
            buffer,
            label: label.to_string(),
            bytes,
        })
    }

    /// A storage buffer holding `data`, copied in by several threads: each thread copies its
    /// share straight from `data` (typically the checkpoint's mmap, whose page faults and
    /// memcpy are the cost of loading a model) into the queue's staging memory, where `write`
    /// would copy it all on one thread. (A buffer mapped at creation would cost one more pass:
    /// wgpu zeroes its staging memory first.) The copy to the GPU happens at the next submit.
    pub fn upload_parallel(&self, label: &str, data: &[u8]) -> Result<GpuBuffer> {
        self.upload_gather(label, &[data])
    }

    /// As [`upload_parallel`](Self::upload_parallel), for the concatenation of `pieces`
    /// (without concatenating them first).
    pub fn upload_gather(&self, label: &str, pieces: &[&[u8]]) -> Result<GpuBuffer> {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let buf = self.storage(label, len as u64)?;
        let size = padded(len as u64);
        let Some(mut view) = wgpu::BufferSize::new(size)
            .and_then(|n| self.queue.write_buffer_with(&buf.buffer, 0, n))
        else {
            return Err(Error::Map {
                label: label.to_string(),
                message: format!("no staging memory for {size} bytes"),
            });
        };
        let mut w = view.slice(..);
        // Below a few MiB a thread costs more than the copy.
        let threads = upload_threads().min(len.div_ceil(UPLOAD_PIECE)).max(1);
        let chunk = len.div_ceil(threads).max(1);
        // (offset in the buffer, source) for every share, shares at most `chunk` bytes.
        let mut shares = Vec::new();
        let mut offset = 0;
        for p in pieces {
            for c in p.chunks(chunk) {
                shares.push((offset, c));
                offset += c.len();
            }
        }
        let dst = SharedPtr(w.as_raw_element_ptr().as_ptr());
        let copy = |(off, src): (usize, &[u8])| {
            // SAFETY: the shares tile 0..len without overlap (offsets are running sums of
            // their lengths) and len <= size, the staging range, so every write is in bounds
            // and no two threads write the same byte; the view outlives every write (threads
            // are joined before it drops); the writes only store bytes, never read the mapping.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.get().add(off), src.len()) }
        };
        if threads == 1 {
            shares.into_iter().for_each(copy);
        } else {
            // The safe write-only view cannot cross threads; its raw pointer is the
            // documented way to write one mapping from several.
            std::thread::scope(|s| {
                for share in shares {
                    let copy = &copy;
                    s.spawn(move || copy(share));
                }
            });
        }
        // The staging memory is not zeroed: the padding must be written.
        let tail = size as usize - len;
        if tail > 0 {
            w.slice(len..).copy_from_slice(&[0u8; 4][..tail]);
        }
        drop(view);
        Ok(buf)
    }

    /// A storage buffer holding `data` (zero-padded to a multiple of 4 bytes).
    pub fn upload(&self, label: &str, data: &[u8]) -> Result<GpuBuffer> {
        let buf = self.storage(label, data.len() as u64)?;
        self.write(&buf, 0, data);
        Ok(buf)
    }

    pub fn upload_pod<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<GpuBuffer> {
        self.upload(label, bytemuck::cast_slice(data))
    }

    /// Writes `data` at byte `offset`; a length that is not a multiple of 4 is zero-padded.
    pub fn write(&self, buf: &GpuBuffer, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if data.len() % 4 == 0 {
            self.queue.write_buffer(&buf.buffer, offset, data);
        } else {
            let mut v = data.to_vec();
            v.resize(padded(data.len() as u64) as usize, 0);
            self.queue.write_buffer(&buf.buffer, offset, &v);
        }
    }

    /// A uniform buffer for a kernel's parameter struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> Result<wgpu::Buffer> {
        let bytes = bytemuck::bytes_of(value);
        let buffer = self.scoped(label, bytes.len() as u64, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: padded(bytes.len() as u64).max(16),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.queue.write_buffer(&buffer, 0, bytes);
        Ok(buffer)
    }

    /// Copies `bytes` bytes of `buf` from `offset` back to the CPU (waits for the queue).
    pub fn read_range(&self, buf: &GpuBuffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let size = padded(bytes);
        let staging = self.scoped(&format!("{} (read-back)", buf.label), size, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back"),
            });
        encoder.copy_buffer_to_buffer(&buf.buffer, offset, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let data = self.map_read(&staging, &buf.label)?;
        Ok(data[..bytes as usize].to_vec())
    }

    /// Maps a MAP_READ buffer and returns its contents.
    pub fn map_read(&self, staging: &wgpu::Buffer, label: &str) -> Result<Vec<u8>> {
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(label)?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Map {
                    label: label.to_string(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(Error::Map {
                    label: label.to_string(),
                    message: "the map callback never ran".to_string(),
                })
            }
        }
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Map {
                label: label.to_string(),
                message: e.to_string(),
            })?
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    pub fn read(&self, buf: &GpuBuffer) -> Result<Vec<u8>> {
        self.read_range(buf, 0, buf.bytes)
    }

    pub fn read_f32(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read(buf)?))
    }

    pub fn read_u32(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read(buf)?))
    }

    /// Fills a buffer with a NaN bit pattern so that unwritten outputs show in tests.
    pub fn poison(&self, buf: &GpuBuffer) {
        let words = padded(buf.bytes) / 4;
        let nan = vec![0x7fc0_dead_u32; words as usize];
        self.queue
            .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(&nan));
    }
}
