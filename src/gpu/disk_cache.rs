//! Compiled pipelines kept on disk between runs (wgpu's `PipelineCache`, on the backends that
//! have one: Vulkan today), so that a second run does not compile every shader again. One file
//! per adapter and driver under the user's cache folder. The file carries its own length and
//! checksum: a truncated or corrupted file is ignored (and replaced), never handed to the
//! driver. `OSS_WGPU_PIPELINE_CACHE=0` turns it off; `OSS_WGPU_CACHE_DIR` moves it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gpu::Gpu;

const MAGIC: &[u8; 8] = b"OSSWPC01";
const HEADER: usize = 8 + 8 + 8;

pub(crate) struct DiskCache {
    pub(crate) cache: wgpu::PipelineCache,
    pub(crate) path: PathBuf,
    /// Bytes of pipeline data loaded from the file (0: started empty).
    pub(crate) loaded: usize,
}

/// FNV-1a, 64-bit: enough to tell a damaged file from a good one (not an integrity proof
/// against tampering: the file is the user's own).
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The pipeline data in a cache file, or None when the file is absent, short or damaged.
fn read_file(path: &Path) -> Option<Vec<u8>> {
    let bytes = crate::fsutil::read(path).ok()?;
    let header = bytes.get(..HEADER)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let sum = u64::from_le_bytes(header[16..24].try_into().ok()?);
    let data = bytes.get(HEADER..)?;
    (data.len() as u64 == len && checksum(data) == sum).then(|| data.to_vec())
}

/// Writes through a temporary file and a rename, so that a crash or a concurrent run never
/// leaves a half-written cache.
fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(data).to_le_bytes());
    out.extend_from_slice(data);
    std::fs::write(&tmp, &out).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// $OSS_WGPU_CACHE_DIR, else $XDG_CACHE_HOME/oss-wgpu, else ~/.cache/oss-wgpu (LOCALAPPDATA on
/// Windows).
pub fn cache_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = nonempty("OSS_WGPU_CACHE_DIR") {
        return Some(p);
    }
    if let Some(p) = nonempty("XDG_CACHE_HOME") {
        return Some(p.join("oss-wgpu"));
    }
    if let Some(p) = nonempty("LOCALAPPDATA") {
        return Some(p.join("oss-wgpu"));
    }
    nonempty("HOME").map(|h| h.join(".cache/oss-wgpu"))
}

fn enabled() -> bool {
    !std::env::var("OSS_WGPU_PIPELINE_CACHE")
        .is_ok_and(|v| matches!(v.trim(), "0" | "false" | "no" | "off"))
}

/// The cache file for this adapter and driver: wgpu's key (backend, vendor, device) and the
/// driver's version text, since a driver update invalidates compiled pipelines.
fn file_name(info: &wgpu::AdapterInfo) -> Option<String> {
    let key = wgpu::util::pipeline_cache_key(info)?;
    let driver: String = format!("{}_{}", info.driver, info.driver_info)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    Some(format!("{key}_{driver}.bin"))
}

/// Opens (or starts) the cache for `device`; None when the device has no pipeline cache, the
/// cache is turned off, or there is nowhere to keep it.
pub(crate) fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<DiskCache> {
    if !enabled() || !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    let path = cache_dir()?.join(file_name(info)?);
    let data = read_file(&path);
    // SAFETY: `data` is what get_data returned for an adapter with this same key (the file
    // name holds wgpu's pipeline_cache_key and the driver version, and the checksum rejects
    // damaged files); wgpu and the driver also check the data's own header, and `fallback`
    // starts an empty cache when they reject it.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("oss-wgpu pipeline cache"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    Some(DiskCache {
        cache,
        path,
        loaded: data.map_or(0, |d| d.len()),
    })
}

impl Gpu {
    /// Saves the compiled pipelines for the next run (a no-op without a pipeline cache). A
    /// failure to write is logged, not fatal: the cache is an optimisation.
    pub fn save_pipeline_cache(&self) {
        let Some(dc) = &self.disk_cache else {
            return;
        };
        let Some(data) = dc.cache.get_data() else {
            return;
        };
        if data.len() == dc.loaded && read_file(&dc.path).is_some_and(|d| d == data) {
            return;
        }
        if let Err(e) = write_file(&dc.path, &data) {
            log::warn!("pipeline cache not saved: {e}");
        }
    }

    /// Where this device's compiled pipelines are kept, when it keeps them.
    pub fn pipeline_cache_path(&self) -> Option<&Path> {
        self.disk_cache.as_ref().map(|d| d.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_cache_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.bin");
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        write_file(&path, &data).unwrap();
        assert_eq!(read_file(&path).as_deref(), Some(&data[..]));
        let good = std::fs::read(&path).unwrap();
        // Truncated, one byte flipped, wrong magic, empty.
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_eq!(read_file(&path), None);
        let mut flipped = good.clone();
        flipped[HEADER + 10] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(read_file(&path), None);
        let mut magic = good.clone();
        magic[0] = b'X';
        std::fs::write(&path, &magic).unwrap();
        assert_eq!(read_file(&path), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_file(&path), None);
    }
}
