//! `inspect --check-values`: every stored tensor the model uses, scanned for values no trained
//! checkpoint has (NaN or infinity in a float tensor, an MXFP4 scale so large that its block's
//! weights are absurd). Header checks cannot see these; without this scan they surface as NaN
//! logits mid-generation. The scan is read-only over the mmap and runs on every core.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::checkpoint::loader::Checkpoint;
use crate::checkpoint::names::{TensorId, TensorKind};
use crate::checkpoint::shards::TensorEntry;

/// Largest E8M0 scale byte taken as plausible: 2^16, so weights up to 6 x 65536. Trained
/// gpt-oss experts use scales around 2^-10..2^0 (bytes 117..127); 2^16 leaves wide headroom
/// for outliers while catching corrupted bytes such as 0xFE (2^127).
pub const MAX_PLAUSIBLE_SCALE: u8 = 127 + 16;

/// Work is split into pieces of at most this many bytes so that one huge tensor (the 1.2 GB
/// embedding of gpt-oss-20b) spreads over every thread.
const PIECE_BYTES: usize = 64 << 20;

/// What is wrong in one tensor.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ValueIssue {
    pub file: std::path::PathBuf,
    pub tensor: String,
    /// "NaN or infinity" or "implausible MXFP4 scale".
    pub problem: String,
    pub count: u64,
    /// Flat element index of the first bad value, and the value as stored.
    pub first_index: u64,
    pub first_value: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueReport {
    pub tensors: usize,
    pub bytes: u64,
    pub issues: Vec<ValueIssue>,
}

/// How the bytes of one tensor are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// 16-bit floats with an 8-bit exponent (bf16): exponent all ones is inf or NaN.
    Bf16,
    F32,
    /// E8M0 scale bytes.
    Scales,
    /// MXFP4 nibbles: every code is a finite value.
    None,
}

fn check_of(e: &TensorEntry, kind: TensorKind) -> Check {
    match (e.dtype, kind) {
        (safetensors::Dtype::BF16, _) => Check::Bf16,
        (safetensors::Dtype::F32, _) => Check::F32,
        (safetensors::Dtype::U8, TensorKind::ExpertScales) => Check::Scales,
        _ => Check::None,
    }
}

/// Bad values in one piece: (tensor index, piece start, count, first (index, value)).
type Found = (usize, usize, u64, Option<(u64, String)>);

/// (count, first index within the piece, first value text) of bad elements in `bytes`.
fn scan(check: Check, bytes: &[u8]) -> (u64, Option<(u64, String)>) {
    let mut count = 0u64;
    let mut first = None;
    let mut note = |i: usize, v: String| {
        count += 1;
        if first.is_none() {
            first = Some((i as u64, v));
        }
    };
    match check {
        Check::Bf16 => {
            for (i, b) in bytes.chunks_exact(2).enumerate() {
                let v = u16::from_le_bytes([b[0], b[1]]);
                if v & 0x7f80 == 0x7f80 {
                    note(i, format!("{}", half::bf16::from_bits(v)));
                }
            }
        }
        Check::F32 => {
            for (i, b) in bytes.chunks_exact(4).enumerate() {
                let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v & 0x7f80_0000 == 0x7f80_0000 {
                    note(i, format!("{}", f32::from_bits(v)));
                }
            }
        }
        Check::Scales => {
            for (i, &s) in bytes.iter().enumerate() {
                if s > MAX_PLAUSIBLE_SCALE {
                    note(i, format!("0x{s:02X} (2^{})", i32::from(s) - 127));
                }
            }
        }
        Check::None => {}
    }
    (count, first)
}

/// Scans every stored tensor the model uses, on `threads` threads (0: one per core), with a
/// progress bar on stderr when `progress`.
pub fn check_values(ck: &Checkpoint, threads: usize, progress: bool) -> ValueReport {
    let c = crate::checkpoint::WeightSource::config(ck);
    let shards = ck.shards();
    // Distinct stored tensors (the original layout's fused qkv serves three canonical ones).
    let mut seen = HashSet::new();
    let mut tensors: Vec<(&TensorEntry, Check)> = Vec::new();
    for id in TensorId::all(c.num_hidden_layers) {
        if let Some(e) = ck.stored(id) {
            if seen.insert(e.name.clone()) {
                tensors.push((e, check_of(e, id.kind())));
            }
        }
    }
    tensors.sort_by_key(|a| (a.0.file, a.0.start));
    // Pieces: (tensor index, byte range within the tensor), aligned to whole elements.
    let mut pieces = Vec::new();
    for (t, (e, _)) in tensors.iter().enumerate() {
        let mut off = 0;
        loop {
            let end = (off + PIECE_BYTES).min(e.bytes());
            pieces.push((t, off, end));
            if end >= e.bytes() {
                break;
            }
            off = end;
        }
    }
    let total: u64 = tensors.iter().map(|(e, _)| e.bytes() as u64).sum();
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "checking values {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} \
             eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    // Per piece with issues, merged in piece order below.
    let found: Mutex<Vec<Found>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.min(pieces.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(t, start, end)) = pieces.get(i) else {
                    break;
                };
                let (e, check) = tensors[t];
                let data = shards.data(e);
                let bytes = data.get(start..end).unwrap_or(&[]);
                let (count, first) = scan(check, bytes);
                if count > 0 {
                    let elem = match check {
                        Check::Bf16 => 2,
                        Check::F32 => 4,
                        _ => 1,
                    };
                    let first = first.map(|(j, v)| (j + (start / elem) as u64, v));
                    found
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((t, start, count, first));
                }
                bar.inc((end - start) as u64);
            });
        }
    });
    bar.finish_and_clear();
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by_key(|f| (f.0, f.1));
    let mut issues: Vec<ValueIssue> = Vec::new();
    let mut last_t = None;
    for (t, _, count, first) in found {
        let (e, check) = tensors[t];
        if last_t == Some(t) {
            if let Some(i) = issues.last_mut() {
                i.count += count;
            }
            continue;
        }
        last_t = Some(t);
        let (first_index, first_value) = first.unwrap_or((0, String::new()));
        issues.push(ValueIssue {
            file: shards.path(e).to_path_buf(),
            tensor: e.name.clone(),
            problem: if check == Check::Scales {
                format!(
                    "MXFP4 scale above 2^{} (implausible)",
                    MAX_PLAUSIBLE_SCALE - 127
                )
            } else {
                "NaN or infinity".into()
            },
            count,
            first_index,
            first_value,
        });
    }
    ValueReport {
        tensors: tensors.len(),
        bytes: total,
        issues,
    }
}
