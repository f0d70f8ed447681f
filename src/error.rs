//! The library's one error type. Every variant names what is wrong (file, tensor, argument, GPU
//! label) and, where it applies, what was expected and what was found.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A path that must be a regular file is a FIFO, a directory, a socket or a device.
    #[error("{path}: is {kind}, expected a regular file")]
    NotAFile { path: PathBuf, kind: &'static str },

    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },

    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("{file}: tensor {tensor}: {message}")]
    Tensor {
        file: PathBuf,
        tensor: String,
        message: String,
    },

    /// A tensor the config implies is in no file of the checkpoint.
    #[error("{dir}: tensor {tensor} is missing ({layout} layout{detail})")]
    MissingTensor {
        dir: PathBuf,
        tensor: String,
        layout: String,
        /// ", needed for <canonical name>" where the stored name differs, else empty.
        detail: String,
    },

    #[error("{file}: tensor {tensor}: expected shape {expected}, got {actual}")]
    TensorShape {
        file: PathBuf,
        tensor: String,
        expected: String,
        actual: String,
    },

    #[error("{file}: tensor {tensor}: expected dtype {expected}, got {actual}")]
    TensorDType {
        file: PathBuf,
        tensor: String,
        expected: String,
        actual: String,
    },

    /// The file is shorter than its header says: usually an interrupted download.
    #[error(
        "{file}: truncated: the header needs {expected_bytes} bytes, the file has {actual_bytes}; \
         tensor {tensor} is the first that ends past the end of the file (incomplete download?)"
    )]
    Truncated {
        file: PathBuf,
        tensor: String,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    #[error("{file}: not a valid safetensors file: {message}")]
    BadHeader { file: PathBuf, message: String },

    #[error("tensor {tensor} is in two files: {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// E8M0 scale byte 0xFF is NaN (OCP MX); no real checkpoint has one.
    #[error(
        "{file}: tensor {tensor}: scale byte 0xFF (NaN in E8M0) at block {block} ({position})"
    )]
    NanScale {
        file: PathBuf,
        tensor: String,
        /// Flat index into the scales tensor.
        block: usize,
        /// "expert e, row r, block b".
        position: String,
    },

    #[error("no GPU adapter: {0}")]
    NoAdapter(String),

    #[error("GPU device request failed on {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },

    /// A wgpu validation error, attributed to the label of the resource or pipeline involved.
    #[error("GPU validation error in '{label}': {message}")]
    GpuValidation { label: String, message: String },

    #[error("GPU out of memory while creating '{label}' ({bytes} bytes requested)")]
    GpuOutOfMemory { label: String, bytes: u64 },

    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    #[error("GPU internal error in '{label}': {message}")]
    GpuInternal { label: String, message: String },

    #[error("'{label}' needs {bytes} bytes in one binding, over this adapter's limit of {limit}")]
    BindingTooLarge {
        label: String,
        bytes: u64,
        limit: u64,
    },

    #[error("buffer mapping failed for '{label}': {message}")]
    Map { label: String, message: String },

    /// The sampler saw NaN or infinite logits: the weights or the computation are broken, and
    /// any token chosen from them would be garbage.
    #[error(
        "non-finite logits (NaN or infinity) at generation step {step} (position {position}): \
         the checkpoint's values or the GPU computation are broken; `oss-wgpu inspect \
         --check-values` scans the weights"
    )]
    NonFiniteLogits { step: usize, position: usize },

    #[error("invalid argument {name}: {message}")]
    Argument { name: String, message: String },

    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        what: String,
        expected: String,
        actual: String,
    },
}

/// "a, b, c": a list inside a message.
pub fn comma_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub fn argument(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Argument {
            name: name.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
