//! The safetensors files of one checkpoint folder: found through model.safetensors.index.json
//! or by listing *.safetensors, memory-mapped once, headers parsed once by the `safetensors`
//! crate. Every tensor's byte range is checked against its file here, so later slicing of the
//! mmap cannot go out of bounds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{SafeTensorError, SafeTensors};

use crate::checkpoint::tensor::shape_string;
use crate::error::{Error, Result};

pub const INDEX: &str = "model.safetensors.index.json";
pub const EXTENSION: &str = "safetensors";

/// One tensor as a header declares it, with its byte range in the file.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    pub name: String,
    /// Index into [`Shards::files`].
    pub file: usize,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte offsets in the file, start inclusive, end exclusive.
    pub start: usize,
    pub end: usize,
}

impl TensorEntry {
    pub fn bytes(&self) -> usize {
        self.end - self.start
    }

    pub fn shape_string(&self) -> String {
        shape_string(&self.shape)
    }
}

/// One mapped file.
pub struct ShardFile {
    pub path: PathBuf,
    pub len: u64,
    map: Option<Mmap>,
}

impl ShardFile {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Every safetensors file of a folder, and every tensor in them by name.
pub struct Shards {
    pub dir: PathBuf,
    /// The index file, when the folder has one.
    pub index: Option<PathBuf>,
    pub files: Vec<ShardFile>,
    entries: HashMap<String, TensorEntry>,
}

impl Shards {
    /// Does `dir` hold any checkpoint file?
    pub fn present(dir: &Path) -> bool {
        dir.join(INDEX).exists()
            || std::fs::read_dir(dir).is_ok_and(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
            })
    }

    /// Maps and parses the files of `dir`: those the index names when there is one, else every
    /// *.safetensors file.
    pub fn open(dir: &Path) -> Result<Shards> {
        let index_path = dir.join(INDEX);
        // exists(), not is_file(): an index that is a FIFO or a folder must be reported.
        let (paths, weight_map) = if index_path.exists() {
            let (paths, map) = read_index(dir, &index_path)?;
            (paths, Some(map))
        } else {
            let paths = list_safetensors(dir)?;
            if paths.is_empty() {
                return Err(Error::Checkpoint {
                    path: dir.to_path_buf(),
                    message: format!("no *.{EXTENSION} files and no {INDEX}"),
                });
            }
            (paths, None)
        };

        let mut files = Vec::with_capacity(paths.len());
        let mut entries: HashMap<String, TensorEntry> = HashMap::new();
        for path in paths {
            let (file, list) = open_file(&path, files.len())?;
            for e in list {
                if let Some(prev) = entries.get(&e.name) {
                    let first = files
                        .get(prev.file)
                        .map_or_else(|| file.path.clone(), |f: &ShardFile| f.path.clone());
                    return Err(Error::DuplicateTensor {
                        tensor: e.name,
                        first,
                        second: file.path.clone(),
                    });
                }
                entries.insert(e.name.clone(), e);
            }
            files.push(file);
        }

        if let Some(map) = weight_map {
            // An index that disagrees with its shards means a mixed-up download; say which.
            let mut wanted: Vec<_> = map.into_iter().collect();
            wanted.sort();
            for (name, file_name) in wanted {
                let in_file = entries.get(&name).map(|e| files[e.file].path.clone());
                let want = dir.join(&file_name);
                if in_file.as_deref() != Some(want.as_path()) {
                    return Err(Error::Checkpoint {
                        path: index_path.clone(),
                        message: match in_file {
                            None => {
                                format!("lists tensor {name} in {file_name}, but no file has it")
                            }
                            Some(p) => format!(
                                "lists tensor {name} in {file_name}, but it is in {}",
                                p.display()
                            ),
                        },
                    });
                }
            }
        }

        Ok(Shards {
            dir: dir.to_path_buf(),
            index: index_path.exists().then_some(index_path),
            files,
            entries,
        })
    }

    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    pub fn entries(&self) -> impl Iterator<Item = &TensorEntry> {
        self.entries.values()
    }

    pub fn path(&self, e: &TensorEntry) -> &Path {
        self.files
            .get(e.file)
            .map_or(self.dir.as_path(), |f| f.path.as_path())
    }

    /// The tensor's bytes, straight from the mmap. Ranges were checked at open; an entry from
    /// elsewhere gives an empty slice rather than a panic.
    pub fn data(&self, e: &TensorEntry) -> &[u8] {
        self.files
            .get(e.file)
            .and_then(|f| f.bytes().get(e.start..e.end))
            .unwrap_or(&[])
    }

    /// "file: tensor", for messages and [`crate::checkpoint::Tensor::source`].
    pub fn describe(&self, e: &TensorEntry) -> String {
        let file = self.path(e);
        let short = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("{short}: {}", e.name)
    }
}

fn list_safetensors(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == EXTENSION) {
            // A shard that is a FIFO or a folder is an error, not a file to skip: skipping it
            // would surface later as a confusing "tensor missing".
            crate::fsutil::regular_file(&path)?;
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The shard paths (sorted) and the name -> file map of an index.
fn read_index(dir: &Path, index: &Path) -> Result<(Vec<PathBuf>, HashMap<String, String>)> {
    let text = crate::fsutil::read_to_string(index)?;
    let bad = |message: String| Error::Json {
        path: index.to_path_buf(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("expected an object \"weight_map\": {tensor: file}".into()))?;
    let mut names = HashMap::with_capacity(map.len());
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut sorted: Vec<_> = map.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, file) in sorted {
        let file = file.as_str().ok_or_else(|| {
            bad(format!(
                "weight_map.{name}: expected a file name, got {file}"
            ))
        })?;
        let path = dir.join(file);
        if !paths.contains(&path) {
            paths.push(path);
        }
        names.insert(name.clone(), file.to_string());
    }
    paths.sort();
    if paths.is_empty() {
        return Err(bad("weight_map is empty".into()));
    }
    Ok((paths, names))
}

const N_LEN: usize = 8;

/// Maps `path` and lists its tensors with absolute byte ranges.
fn open_file(path: &Path, index: usize) -> Result<(ShardFile, Vec<TensorEntry>)> {
    let file = crate::fsutil::open(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let bad = |message: String| Error::BadHeader {
        file: path.to_path_buf(),
        message,
    };
    if (len as usize) < N_LEN {
        return Err(bad(format!(
            "{len} bytes is too short for the 8-byte header length"
        )));
    }
    // SAFETY: the map is read-only; a file changed underneath while mapped is the one hazard,
    // as with every mmap-based loader.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let (n, metadata) = match SafeTensors::read_metadata(&map) {
        Ok(x) => x,
        Err(e) => return Err(diagnose(path, &map, e)),
    };
    let base = N_LEN + n;
    let mut entries = Vec::new();
    for (name, info) in metadata.tensors() {
        let (s, e) = info.data_offsets;
        // read_metadata checked that the ranges tile the data section exactly.
        let (start, end) = match (base.checked_add(s), base.checked_add(e)) {
            (Some(a), Some(b)) if a <= b && b <= map.len() => (a, b),
            _ => {
                return Err(bad(format!(
                    "tensor {name}: data offsets {s}..{e} out of range"
                )))
            }
        };
        entries.push(TensorEntry {
            name,
            file: index,
            dtype: info.dtype,
            shape: info.shape.clone(),
            start,
            end,
        });
    }
    entries.sort_by_key(|e| e.start);
    Ok((
        ShardFile {
            path: path.to_path_buf(),
            len,
            map: Some(map),
        },
        entries,
    ))
}

/// Turns a header error into a message that says what went wrong with this file, naming the
/// first tensor past the end for a truncated one.
fn diagnose(path: &Path, bytes: &[u8], e: SafeTensorError) -> Error {
    let bad = |message: String| Error::BadHeader {
        file: path.to_path_buf(),
        message,
    };
    let len = bytes.len() as u64;
    let n = bytes
        .get(..N_LEN)
        .and_then(|b| <[u8; N_LEN]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes);
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            let end = usize::try_from(n).ok().and_then(|n| n.checked_add(N_LEN));
            let header = end.and_then(|end| bytes.get(N_LEN..end)).unwrap_or(&[]);
            let meta: safetensors::tensor::Metadata = match serde_json::from_slice(header) {
                Ok(m) => m,
                Err(e) => return bad(format!("header: {e}")),
            };
            let available = len.saturating_sub(N_LEN as u64 + n);
            let needed = meta.data_len() as u64;
            let expected_bytes = N_LEN as u64 + n + needed;
            if needed > available {
                let mut list: Vec<_> = meta.tensors().into_iter().collect();
                list.sort_by_key(|(_, i)| i.data_offsets);
                let first = list
                    .iter()
                    .find(|(_, i)| i.data_offsets.1 as u64 > available)
                    .map_or_else(|| "?".to_string(), |(name, _)| name.clone());
                Error::Truncated {
                    file: path.to_path_buf(),
                    tensor: first,
                    expected_bytes,
                    actual_bytes: len,
                }
            } else {
                bad(format!(
                    "{} bytes after the last tensor (the header accounts for {expected_bytes} \
                     of {len})",
                    available - needed
                ))
            }
        }
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooLarge => bad(format!(
            "the first 8 bytes give a header length of {n} bytes, but the file has {len} \
             (not a safetensors file, or cut short inside its header)"
        )),
        SafeTensorError::InvalidOffset(name) => bad(format!(
            "tensor {name}: data offsets do not follow the previous tensor's"
        )),
        SafeTensorError::TensorInvalidInfo => bad(size_mismatch(bytes, n)
            .unwrap_or_else(|| "a tensor's data size does not match its dtype and shape".into())),
        other => bad(other.to_string()),
    }
}

/// Names the first tensor whose offsets disagree with its dtype and shape.
fn size_mismatch(bytes: &[u8], n: u64) -> Option<String> {
    let header = bytes.get(N_LEN..N_LEN.checked_add(usize::try_from(n).ok()?)?)?;
    let map: HashMap<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut list: Vec<_> = map
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, v) in list {
        let info: safetensors::tensor::TensorInfo = serde_json::from_value(v).ok()?;
        let elements = crate::checkpoint::tensor::element_count(&info.shape)?;
        let need = elements.checked_mul(info.dtype.bitsize())? / 8;
        let (s, e) = info.data_offsets;
        if e.checked_sub(s) != Some(need) {
            return Some(format!(
                "tensor {name}: {:?} {} needs {need} bytes, its offsets {s}..{e} give {}",
                info.dtype,
                shape_string(&info.shape),
                e as i128 - s as i128
            ));
        }
    }
    None
}
