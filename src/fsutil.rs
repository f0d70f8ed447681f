//! Reading the files of a checkpoint folder safely: the file type is checked before anything
//! opens it, because opening a FIFO for reading blocks until a writer appears (forever, for a
//! stray pipe in a model folder) and a directory opens fine on Linux and fails later with an
//! unhelpful "No such device".

use std::path::Path;

use crate::error::{Error, Result};

/// What a non-regular path is, for messages.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Checks that `path` (symlinks followed, as the hub cache uses them) is a regular file and
/// returns its length.
pub fn regular_file(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(meta.len())
}

/// Opens a regular file for reading (never blocks on a FIFO).
pub fn open(path: &Path) -> Result<std::fs::File> {
    regular_file(path)?;
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    regular_file(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    regular_file(path)?;
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}
