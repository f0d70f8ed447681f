//! [`Checkpoint`]: a folder on disk, opened, its layout detected and every tensor the config
//! implies validated before anything touches the GPU.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::checkpoint::layout::{
    detect, find_nan_scale, quantize_dense, stored_form, DensePart, Layout, Storage,
};
use crate::checkpoint::names::{ExpertMatrix, TensorId, TensorKind};
use crate::checkpoint::shards::{Shards, TensorEntry};
use crate::checkpoint::tensor::{canonical_shape, shape_string, DType, Tensor, WeightSource};
use crate::config::{ModelConfig, CONFIG, GENERATION_CONFIG};
use crate::error::{Error, Result};

pub const TOKENIZER: &str = "tokenizer.json";
/// The hub keeps the original layout in this subfolder of the HF one.
pub const ORIGINAL_DIR: &str = "original";

/// A canonical tensor, resolved to the stored tensor it comes from.
struct Resolved {
    entry: TensorEntry,
    dtype: DType,
    storage: Storage,
}

/// The other half of the last dense expert matrix quantized: uploads ask for blocks and then
/// scales of the same matrix, and quantizing costs a full pass over it.
struct QuantCache {
    layer: usize,
    matrix: ExpertMatrix,
    part: DensePart,
    data: Vec<u8>,
}

/// An opened, validated checkpoint folder.
pub struct Checkpoint {
    /// The folder the user named.
    pub dir: PathBuf,
    /// The folder the tensors come from: `dir`, or `dir/original` when only that holds any.
    pub root: PathBuf,
    pub layout: Layout,
    /// Both key sets were present; `block.*` is ignored.
    pub both_key_sets: bool,
    /// Things the loader decided that a user may want to know (inspect prints them).
    pub notes: Vec<String>,
    config: ModelConfig,
    shards: Shards,
    resolved: HashMap<TensorId, Resolved>,
    tokenizer: Option<PathBuf>,
    quant_cache: Mutex<Option<QuantCache>>,
}

impl Checkpoint {
    /// Opens `dir`: finds the files, parses the config, detects the layout, and checks every
    /// tensor the config implies (presence, dtype, shape, byte range, no NaN scale).
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            return Err(Error::Checkpoint {
                path: dir.to_path_buf(),
                message: "not a directory".into(),
            });
        }
        let mut notes = Vec::new();
        let sub = dir.join(ORIGINAL_DIR);
        let root = if !Shards::present(dir) && Shards::present(&sub) {
            notes.push(format!(
                "{} holds no weights; using {ORIGINAL_DIR}/",
                dir.display()
            ));
            sub
        } else {
            if Shards::present(&sub) {
                notes.push(format!(
                    "{ORIGINAL_DIR}/ ignored: the folder itself holds the weights"
                ));
            }
            dir.to_path_buf()
        };
        let shards = Shards::open(&root)?;
        let (layout, both_key_sets) = detect(&shards)?;
        if both_key_sets {
            let msg = "both key sets present: using model.*, ignoring block.*";
            log::info!("{}: {msg}", root.display());
            notes.push(msg.to_string());
        }
        if layout == Layout::HfBf16 {
            let msg = "experts are dense BF16: quantizing them to MXFP4 on load";
            log::info!("{}: {msg}", root.display());
            notes.push(msg.to_string());
        }

        // A folder with only the original layout (the hub's original/) borrows the tokenizer
        // and the generation config from the folder above when it has none of its own.
        let parent = (layout == Layout::Original)
            .then(|| root.parent().map(Path::to_path_buf))
            .flatten();
        // exists(), not is_file(): a FIFO or folder in the place of a file is reported when it
        // is read, instead of being silently taken as absent.
        let beside = |name: &str| -> Option<PathBuf> {
            let own = root.join(name);
            if own.exists() {
                return Some(own);
            }
            let up = parent.as_ref()?.join(name);
            up.exists().then_some(up)
        };
        let tokenizer = beside(TOKENIZER);
        let generation = beside(GENERATION_CONFIG);
        for p in [&tokenizer, &generation].into_iter().flatten() {
            if !p.starts_with(&root) {
                notes.push(format!("{} taken from the parent folder", p.display()));
            }
        }
        let config = ModelConfig::from_files(&root.join(CONFIG), generation.as_deref())?;

        // On several threads: the check for NaN scales reads every scale byte (600 MB for
        // gpt-oss-20b), which is start-up time. Errors are reported in tensor order, as a
        // serial loop would.
        let ids = TensorId::all(config.num_hidden_layers);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let per = ids.len().div_ceil(threads).max(1);
        let results: Vec<Result<Resolved>> = std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(per)
                .map(|chunk| {
                    let (shards, config) = (&shards, &config);
                    let h = s.spawn(move || {
                        chunk
                            .iter()
                            .map(|&id| resolve(shards, layout, config, id))
                            .collect::<Vec<_>>()
                    });
                    (chunk.len(), h)
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(n, h)| {
                    h.join().unwrap_or_else(|_| {
                        (0..n)
                            .map(|_| {
                                Err(Error::Checkpoint {
                                    path: root.clone(),
                                    message: "tensor validation panicked".into(),
                                })
                            })
                            .collect()
                    })
                })
                .collect()
        });
        let mut resolved = HashMap::new();
        for (id, r) in ids.into_iter().zip(results) {
            resolved.insert(id, r?);
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            root,
            layout,
            both_key_sets,
            notes,
            config,
            shards,
            resolved,
            tokenizer,
            quant_cache: Mutex::new(None),
        })
    }

    /// tokenizer.json of the checkpoint (or of its parent, for an original-only folder).
    pub fn tokenizer_path(&self) -> Option<PathBuf> {
        self.tokenizer.clone()
    }

    pub fn shards(&self) -> &Shards {
        &self.shards
    }

    /// The stored tensor `id` comes from.
    pub fn stored(&self, id: TensorId) -> Option<&TensorEntry> {
        self.resolved.get(&id).map(|r| &r.entry)
    }

    /// How `id` is stored: whole, as a row range (the original's fused qkv), or dense.
    pub fn storage(&self, id: TensorId) -> Option<&Storage> {
        self.resolved.get(&id).map(|r| &r.storage)
    }

    fn quantized(
        &self,
        layer: usize,
        matrix: ExpertMatrix,
        part: DensePart,
        r: &Resolved,
    ) -> Result<Vec<u8>> {
        let mut cache = self.quant_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.take() {
            if c.layer == layer && c.matrix == matrix && c.part == part {
                return Ok(c.data);
            }
        }
        let (out, inp) = matrix.out_in(&self.config);
        let data = self.shards.data(&r.entry);
        let (blocks, scales) = quantize_dense(
            data,
            r.dtype,
            self.config.num_experts,
            inp,
            out,
            &r.entry.name,
        )
        .map_err(|message| Error::Tensor {
            file: self.shards.path(&r.entry).to_path_buf(),
            tensor: r.entry.name.clone(),
            message,
        })?;
        let (want, other, other_part) = match part {
            DensePart::Blocks => (blocks, scales, DensePart::Scales),
            DensePart::Scales => (scales, blocks, DensePart::Blocks),
        };
        *cache = Some(QuantCache {
            layer,
            matrix,
            part: other_part,
            data: other,
        });
        Ok(want)
    }
}

impl WeightSource for Checkpoint {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn tensor(&self, id: TensorId) -> Result<Tensor<'_>> {
        let r = self.resolved.get(&id).ok_or_else(|| Error::Checkpoint {
            path: self.root.clone(),
            message: format!("{} is not a tensor of this model", id.hf_name()),
        })?;
        let shape = canonical_shape(&self.config, id);
        let describe = self.shards.describe(&r.entry);
        let (data, dtype, source): (Cow<'_, [u8]>, DType, String) = match r.storage {
            Storage::Whole => (Cow::Borrowed(self.shards.data(&r.entry)), r.dtype, describe),
            Storage::Rows { first, rows } => {
                let all = self.shards.data(&r.entry);
                let total_rows = r.entry.shape.first().copied().unwrap_or(0).max(1);
                let row_bytes = all.len() / total_rows;
                let slice = all
                    .get(first * row_bytes..(first + rows) * row_bytes)
                    .ok_or_else(|| Error::Tensor {
                        file: self.shards.path(&r.entry).to_path_buf(),
                        tensor: r.entry.name.clone(),
                        message: format!("rows {first}..{} out of range", first + rows),
                    })?;
                (
                    Cow::Borrowed(slice),
                    r.dtype,
                    format!("{describe} rows {first}..{}", first + rows),
                )
            }
            Storage::Dense { matrix, part } => {
                let TensorId::Layer(layer, _) = id else {
                    return Err(Error::Checkpoint {
                        path: self.root.clone(),
                        message: format!("{} is not an expert tensor", id.hf_name()),
                    });
                };
                let data = self.quantized(layer, matrix, part, r)?;
                (
                    Cow::Owned(data),
                    DType::U8,
                    format!("{describe} (BF16 -> MXFP4)"),
                )
            }
        };
        Ok(Tensor {
            id,
            source,
            dtype,
            shape,
            data,
        })
    }
}

/// Finds `id` in `shards` and checks it is as the config implies.
fn resolve(shards: &Shards, layout: Layout, c: &ModelConfig, id: TensorId) -> Result<Resolved> {
    let form = stored_form(layout, c, id);
    let hf = id.hf_name();
    let Some(entry) = shards.get(&form.name) else {
        return Err(Error::MissingTensor {
            dir: shards.index.clone().unwrap_or_else(|| shards.dir.clone()),
            tensor: form.name.clone(),
            layout: layout.describe().to_string(),
            detail: if form.name != hf {
                format!(", needed for {hf}")
            } else {
                String::new()
            },
        });
    };
    let file = shards.path(entry).to_path_buf();
    let dtype = DType::from_safetensors(entry.dtype).filter(|d| form.dtypes.contains(d));
    let Some(dtype) = dtype else {
        return Err(Error::TensorDType {
            file,
            tensor: entry.name.clone(),
            expected: form
                .dtypes
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(" or "),
            actual: format!("{:?}", entry.dtype),
        });
    };
    if entry.shape != form.shape {
        return Err(Error::TensorShape {
            file,
            tensor: entry.name.clone(),
            expected: shape_string(&form.shape),
            actual: entry.shape_string(),
        });
    }
    if id.kind() == TensorKind::ExpertScales && form.storage == Storage::Whole {
        if let Some((block, position)) = find_nan_scale(shards.data(entry), &entry.shape) {
            return Err(Error::NanScale {
                file,
                tensor: entry.name.clone(),
                block,
                position,
            });
        }
    }
    Ok(Resolved {
        entry: entry.clone(),
        dtype,
        storage: form.storage,
    })
}
