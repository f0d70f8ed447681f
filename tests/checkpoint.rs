//! Checkpoint layouts, validation and upload, on tiny checkpoints written by
//! `oss_wgpu::testing::writer` from one set of seeded random weights.

mod common;

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;

use oss_wgpu::checkpoint::{Checkpoint, DType, Layout, TensorId, WeightSource};
use oss_wgpu::config::ModelConfig;
use oss_wgpu::gpu::{Gpu, GpuOptions};
use oss_wgpu::model::Weights;
use oss_wgpu::testing::writer::{
    hf_config_json, tiny_config, write_json, write_safetensors, RawTensor, WeightSet, WriteLayout,
};
use oss_wgpu::Error;

const SEED: u64 = 0x5eed;

fn weights() -> WeightSet {
    WeightSet::random(&tiny_config(), SEED)
}

fn write(ws: &WeightSet, layout: WriteLayout) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), layout).unwrap();
    dir
}

fn open_err(dir: &Path) -> Error {
    match Checkpoint::open(dir) {
        Ok(_) => panic!("{} opened, expected an error", dir.display()),
        Err(e) => e,
    }
}

/// The message, with the checks every loader error must pass.
fn message(e: &Error, must_name: &[&str]) -> String {
    let m = e.to_string();
    for n in must_name {
        assert!(m.contains(n), "error {m:?} does not name {n:?}");
    }
    m
}

/// Every canonical tensor the checkpoint gives equals the one it was written from (vectors
/// compared as f32, since layouts may store them as BF16 or F32).
fn assert_same_tensors(ck: &Checkpoint, ws: &WeightSet) {
    let c = ws.config();
    for id in TensorId::all(c.num_hidden_layers) {
        let got = ck.tensor(id).unwrap();
        let want = ws.tensor(id).unwrap();
        assert_eq!(got.shape, want.shape, "{id:?}");
        if got.dtype == want.dtype {
            assert!(
                got.data == want.data,
                "{id:?} from {}: bytes differ",
                got.source
            );
        } else {
            assert_eq!(got.to_f32(), want.to_f32(), "{id:?} from {}", got.source);
        }
    }
}

#[test]
fn every_layout_gives_the_same_canonical_tensors() {
    let ws = weights();
    let cases = [
        (WriteLayout::HfMxfp4 { shards: 2 }, Layout::HfMxfp4, false),
        (WriteLayout::Original, Layout::Original, false),
        (WriteLayout::Both, Layout::HfMxfp4, true),
        (WriteLayout::HfBf16, Layout::HfBf16, false),
        (WriteLayout::Hub, Layout::HfMxfp4, false),
    ];
    for (write_as, layout, both) in cases {
        let dir = write(&ws, write_as);
        let ck = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(ck.layout, layout, "{write_as:?}");
        assert_eq!(ck.both_key_sets, both, "{write_as:?}");
        assert_eq!(ck.root, dir.path(), "{write_as:?}");
        assert_eq!(ck.config().vocab_size, 300);
        assert_same_tensors(&ck, &ws);
    }
}

#[test]
fn configs_of_both_namings_agree() {
    let ws = weights();
    let hf = write(&ws, WriteLayout::HfMxfp4 { shards: 1 });
    let orig = write(&ws, WriteLayout::Original);
    let a = Checkpoint::open(hf.path()).unwrap().config().clone();
    let b = Checkpoint::open(orig.path()).unwrap().config().clone();
    // The original config has neither eps (1e-5 by definition) nor stop tokens.
    assert_eq!(
        ModelConfig {
            eos_token_ids: vec![],
            ..a.clone()
        },
        b
    );
    assert_eq!(a.eos_token_ids, tiny_config().eos_token_ids);
}

#[test]
fn original_qkv_rows_are_borrowed_from_the_mmap() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::Original);
    let ck = Checkpoint::open(dir.path()).unwrap();
    for t in [
        oss_wgpu::checkpoint::LayerTensor::QWeight,
        oss_wgpu::checkpoint::LayerTensor::KWeight,
        oss_wgpu::checkpoint::LayerTensor::VBias,
    ] {
        let tensor = ck.tensor(TensorId::Layer(1, t)).unwrap();
        assert!(matches!(tensor.data, Cow::Borrowed(_)), "{t:?} was copied");
        assert!(
            tensor.source.contains("block.1.attn.qkv"),
            "{}",
            tensor.source
        );
    }
}

#[test]
fn bf16_experts_are_quantized_on_load() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::HfBf16);
    let ck = Checkpoint::open(dir.path()).unwrap();
    let id = TensorId::Layer(2, oss_wgpu::checkpoint::LayerTensor::DownScales);
    let t = ck.tensor(id).unwrap();
    assert_eq!(t.dtype, DType::U8);
    assert!(
        t.source.contains("model.layers.2.mlp.experts.down_proj"),
        "{}",
        t.source
    );
    // Scales before blocks, and twice: the one-slot cache must not hand out stale halves.
    for _ in 0..2 {
        for l in 0..3 {
            for tensor in [
                oss_wgpu::checkpoint::LayerTensor::GateUpScales,
                oss_wgpu::checkpoint::LayerTensor::GateUpBlocks,
            ] {
                let id = TensorId::Layer(l, tensor);
                assert!(ck.tensor(id).unwrap().data == ws.tensor(id).unwrap().data);
            }
        }
    }
}

#[test]
fn hub_root_original_folder_and_parent_files() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::Hub);
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();

    let root = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(root.layout, Layout::HfMxfp4);
    assert!(
        root.notes.iter().any(|n| n.contains("original/ ignored")),
        "{:?}",
        root.notes
    );
    assert_eq!(
        root.tokenizer_path(),
        Some(dir.path().join("tokenizer.json"))
    );

    // The original folder alone: weights from it, tokenizer and stop tokens from its parent.
    let orig = Checkpoint::open(&dir.path().join("original")).unwrap();
    assert_eq!(orig.layout, Layout::Original);
    assert_eq!(
        orig.tokenizer_path(),
        Some(dir.path().join("tokenizer.json"))
    );
    assert_eq!(orig.config().eos_token_ids, tiny_config().eos_token_ids);
    assert_same_tensors(&orig, &ws);

    // A folder whose weights are only in original/.
    let only = tempfile::tempdir().unwrap();
    ws.write(&only.path().join("original"), WriteLayout::Original)
        .unwrap();
    let ck = Checkpoint::open(only.path()).unwrap();
    assert_eq!(ck.root, only.path().join("original"));
    assert_eq!(ck.layout, Layout::Original);
}

// ---- corrupted checkpoints ----

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// The tensor with the highest data offsets in a safetensors file: the first cut by a
/// truncation of a few bytes.
fn last_tensor(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.offset_keys().pop().unwrap()
}

#[test]
fn truncated_shard_names_the_file_and_the_first_tensor_cut() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::HfMxfp4 { shards: 2 });
    let shard = dir.path().join("model-00001-of-00001.safetensors");
    let last = last_tensor(&shard);
    let len = file_len(&shard);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.set_len(len - 3).unwrap();
    let e = open_err(dir.path());
    assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    message(
        &e,
        &[
            "model-00001-of-00001.safetensors",
            &last,
            "truncated",
            &len.to_string(),
        ],
    );
}

#[test]
fn garbage_header_names_the_file() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::HfMxfp4 { shards: 2 });
    let shard = dir.path().join("model-00000-of-00001.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();

    // A header length far past the end of the file.
    bytes[..8].copy_from_slice(b"GARBAGE!");
    std::fs::write(&shard, &bytes).unwrap();
    let e = open_err(dir.path());
    assert!(matches!(e, Error::BadHeader { .. }), "{e:?}");
    message(
        &e,
        &[
            "model-00000-of-00001.safetensors",
            "not a valid safetensors file",
        ],
    );

    // A plausible length, then bytes that are not JSON.
    bytes[..8].copy_from_slice(&16u64.to_le_bytes());
    bytes[8..24].copy_from_slice(b"\x00\x01not json at al");
    std::fs::write(&shard, &bytes).unwrap();
    let e = open_err(dir.path());
    message(
        &e,
        &[
            "model-00000-of-00001.safetensors",
            "not a valid safetensors file",
        ],
    );

    // Too short to hold the length.
    std::fs::write(&shard, b"abc").unwrap();
    let e = open_err(dir.path());
    message(&e, &["model-00000-of-00001.safetensors"]);
}

/// Writes `tensors` as one-file checkpoint with the tiny HF config.
fn write_tensors(tensors: Vec<(String, RawTensor)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_json(
        &dir.path().join("config.json"),
        &hf_config_json(&tiny_config()),
    )
    .unwrap();
    write_safetensors(dir.path(), tensors, 1).unwrap();
    dir
}

fn edit(
    tensors: Vec<(String, RawTensor)>,
    name: &str,
    f: impl Fn(&mut RawTensor),
) -> Vec<(String, RawTensor)> {
    let mut found = false;
    let out = tensors
        .into_iter()
        .map(|(n, mut t)| {
            if n == name {
                f(&mut t);
                found = true;
            }
            (n, t)
        })
        .collect();
    assert!(found, "no tensor {name} to edit");
    out
}

/// The error of opening the HF-layout checkpoint of `ws` with tensor `name` changed by `f`.
fn edited_err(ws: &WeightSet, name: &str, f: impl Fn(&mut RawTensor)) -> Error {
    open_err(write_tensors(edit(ws.hf_tensors(), name, f)).path())
}

#[test]
fn missing_tensor_is_named() {
    let ws = weights();
    let name = "model.layers.1.mlp.router.bias";
    let mut t = ws.hf_tensors();
    t.retain(|(n, _)| n != name);
    let dir = write_tensors(t);
    let e = open_err(dir.path());
    assert!(matches!(e, Error::MissingTensor { .. }), "{e:?}");
    message(&e, &[name, "missing"]);

    // In the original layout the stored name is given, with the canonical one it serves.
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), WriteLayout::Original).unwrap();
    let mut t = ws.original_tensors();
    t.retain(|(n, _)| n != "block.2.attn.qkv.weight");
    write_safetensors(dir.path(), t, 1).unwrap();
    let e = open_err(dir.path());
    message(
        &e,
        &[
            "block.2.attn.qkv.weight",
            "model.layers.2.self_attn.q_proj.weight",
        ],
    );

    // An index naming a shard that is not there.
    let dir = write(&ws, WriteLayout::HfMxfp4 { shards: 2 });
    std::fs::remove_file(dir.path().join("model-00001-of-00001.safetensors")).unwrap();
    let e = open_err(dir.path());
    message(&e, &["model-00001-of-00001.safetensors"]);
}

#[test]
fn wrong_shape_is_named_with_expected_and_actual() {
    let ws = weights();
    let name = "model.layers.0.self_attn.k_proj.weight";
    let e = edited_err(&ws, name, |t| {
        t.shape = vec![48, 64];
        t.data.resize(48 * 64 * 2, 0);
    });
    assert!(matches!(e, Error::TensorShape { .. }), "{e:?}");
    message(&e, &[name, "model.safetensors", "[32, 64]", "[48, 64]"]);

    // Expert blocks with a transposed layout.
    let name = "model.layers.2.mlp.experts.down_proj_blocks";
    let e = edited_err(&ws, name, |t| t.shape = vec![4, 2, 64, 16]);
    message(&e, &[name, "[4, 64, 2, 16]", "[4, 2, 64, 16]"]);
}

#[test]
fn wrong_dtype_is_named_with_expected_and_actual() {
    let ws = weights();
    let name = "model.layers.1.mlp.router.weight";
    let e = edited_err(&ws, name, |t| t.dtype = safetensors::Dtype::F16);
    assert!(matches!(e, Error::TensorDType { .. }), "{e:?}");
    message(&e, &[name, "model.safetensors", "BF16", "F16"]);

    // Scales stored as something other than bytes.
    let name = "model.layers.0.mlp.experts.gate_up_proj_scales";
    let e = edited_err(&ws, name, |t| t.dtype = safetensors::Dtype::I8);
    message(&e, &[name, "U8", "I8"]);

    // A norm may be F32 but not F16.
    let name = "model.norm.weight";
    let e = edited_err(&ws, name, |t| t.dtype = safetensors::Dtype::F16);
    message(&e, &[name, "BF16 or F32", "F16"]);
}

#[test]
fn nan_scale_names_the_tensor_and_block() {
    let ws = weights();
    let name = "model.layers.1.mlp.experts.down_proj_scales";
    // [4 experts, 64 rows, 2 blocks]: flat index 2*128 + 5*2 + 1 = 267 is expert 2, row 5,
    // block 1.
    let e = edited_err(&ws, name, |t| t.data[267] = 0xFF);
    assert!(matches!(e, Error::NanScale { block: 267, .. }), "{e:?}");
    message(
        &e,
        &[
            name,
            "model.safetensors",
            "block 267",
            "expert 2, row 5, block 1",
        ],
    );

    // The same in the original layout names the original tensor.
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), WriteLayout::Original).unwrap();
    let t = edit(
        ws.original_tensors(),
        "block.0.mlp.mlp1_weight.scales",
        |t| t.data[0] = 0xFF,
    );
    write_safetensors(dir.path(), t, 1).unwrap();
    let e = open_err(dir.path());
    message(&e, &["block.0.mlp.mlp1_weight.scales", "block 0 "]);
}

/// Random cuts and random header bytes: always an error or a checkpoint, never a panic.
#[test]
fn corrupted_bytes_never_panic() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::Original);
    let path = dir.path().join("model.safetensors");
    let good = std::fs::read(&path).unwrap();
    let mut rng = common::Rng::new(SEED);
    println!("seed {SEED:#x}");
    for round in 0..200 {
        let mut bytes = good.clone();
        if round % 2 == 0 {
            bytes.truncate(rng.below(good.len() as u32) as usize);
        } else {
            let header = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(header as u32) as usize;
                bytes[at] = rng.byte();
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(ck) = Checkpoint::open(dir.path()) {
            for id in TensorId::all(ck.config().num_hidden_layers) {
                let _ = ck.tensor(id);
            }
        }
    }
}

#[test]
fn folders_without_weights_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_err(dir.path());
    message(&e, &["no *.safetensors files"]);
    let e = open_err(&dir.path().join("nope"));
    message(&e, &["not a directory"]);

    // Weights that are not gpt-oss.
    let t = vec![(
        "transformer.wte.weight".to_string(),
        RawTensor {
            dtype: safetensors::Dtype::BF16,
            shape: vec![2],
            data: vec![0; 4],
        },
    )];
    let e = open_err(write_tensors(t).path());
    message(&e, &["no gpt-oss tensors", "transformer.wte.weight"]);

    // No config.json.
    let ws = weights();
    let dir = write(&ws, WriteLayout::HfMxfp4 { shards: 1 });
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let e = open_err(dir.path());
    message(&e, &["config.json"]);
}

// ---- upload ----

fn gpu() -> Gpu {
    common::gpu_with(common::env_options())
}

/// Every buffer's label and bytes.
fn read_back(gpu: &Gpu, w: &Weights) -> Vec<(String, Vec<u8>)> {
    w.buffers()
        .into_iter()
        .map(|b| (b.label.clone(), gpu.read(b).unwrap()))
        .collect()
}

#[test]
fn layouts_upload_identical_gpu_buffers() {
    let gpu = gpu();
    let ws = weights();
    let reference = read_back(&gpu, &Weights::upload(&gpu, &ws, false).unwrap());
    let c = ws.config();
    // One buffer per tensor, but q, k and v (weights, biases) stacked into one each: nothing in
    // the tiny model is split.
    assert_eq!(
        reference.len(),
        TensorId::all(c.num_hidden_layers).len() - 4 * c.num_hidden_layers
    );
    // Vectors are f32 on the GPU; matrices keep their BF16 bytes.
    let (label, bytes) = &reference[1];
    assert_eq!(label, "model.layers.0.input_layernorm.weight");
    assert_eq!(bytes.len(), 64 * 4);
    assert_eq!(reference[0].1.len(), 300 * 64 * 2);

    for layout in [
        WriteLayout::HfMxfp4 { shards: 2 },
        WriteLayout::Original,
        WriteLayout::Both,
        WriteLayout::HfBf16,
    ] {
        let dir = write(&ws, layout);
        let ck = Checkpoint::open(dir.path()).unwrap();
        let w = Weights::upload(&gpu, &ck, false).unwrap();
        let got = read_back(&gpu, &w);
        assert_eq!(got.len(), reference.len(), "{layout:?}");
        for ((gl, gb), (rl, rb)) in got.iter().zip(&reference) {
            assert_eq!(gl, rl, "{layout:?}");
            assert!(gb == rb, "{layout:?}: {gl} differs");
        }
        assert_eq!(
            w.layers[0].expert_ranges,
            vec![(0, c.num_experts)],
            "{layout:?}"
        );
    }
}

#[test]
fn upload_splits_tensors_over_the_binding_limit() {
    // vocab 9000 x hidden 64 x 2 bytes = 1152000 bytes > 1 MiB: embedding and lm_head split.
    let config = ModelConfig {
        vocab_size: 9000,
        ..tiny_config()
    };
    let ws = WeightSet::random(&config, SEED);
    let dir = tempfile::tempdir().unwrap();
    ws.write(dir.path(), WriteLayout::Original).unwrap();
    let ck = Checkpoint::open(dir.path()).unwrap();

    let gpu = common::gpu_with(GpuOptions {
        max_binding_bytes: Some(1 << 20),
        ..common::env_options()
    });
    assert_eq!(gpu.max_binding(), 1 << 20);
    let w = Weights::upload(&gpu, &ck, false).unwrap();
    for (m, id) in [
        (&w.embedding, TensorId::Embedding),
        (&w.lm_head, TensorId::LmHead),
    ] {
        // 8192 rows of 128 bytes fill 1 MiB exactly.
        let ranges: Vec<_> = m.parts.iter().map(|p| (p.first_row, p.rows)).collect();
        assert_eq!(ranges, vec![(0, 8192), (8192, 808)]);
        let mut all = Vec::new();
        for (i, p) in m.parts.iter().enumerate() {
            assert_eq!(p.buffer.label, format!("{}.part{i}", id.hf_name()));
            assert!(p.buffer.bytes <= gpu.max_binding());
            all.extend(gpu.read(&p.buffer).unwrap());
        }
        assert!(all == ws.tensor(id).unwrap().data.as_ref(), "{id:?}");
        let (part, row) = m.locate(8200).unwrap();
        assert_eq!((part.first_row, row), (8192, 8));
    }
    assert_eq!(
        Weights::gpu_bytes(&config, 1 << 20).unwrap(),
        w.buffers()
            .iter()
            .map(|b| b.bytes.div_ceil(4) * 4)
            .sum::<u64>()
    );
}

#[test]
fn upload_rejects_a_source_that_disagrees_with_its_config() {
    let gpu = gpu();
    let mut ws = weights();
    let id = TensorId::Layer(0, oss_wgpu::checkpoint::LayerTensor::Sinks);
    ws.tensors.get_mut(&id).unwrap().shape = vec![5];
    let e = match Weights::upload(&gpu, &ws, false) {
        Ok(_) => panic!("uploaded a wrong shape"),
        Err(e) => e,
    };
    message(&e, &["model.layers.0.self_attn.sinks", "[4]", "[5]"]);
}

// ---- the CLI ----

fn inspect(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(common::oss_wgpu_bin())
        .arg("inspect")
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_reports_a_good_checkpoint_and_fails_a_bad_one() {
    let ws = weights();
    let dir = write(&ws, WriteLayout::Original);
    // The original layout's folder has no tokenizer of its own; inspect requires one.
    write_json(
        &dir.path().join("tokenizer.json"),
        &oss_wgpu::testing::writer::tokenizer_json(ws.config.vocab_size),
    )
    .unwrap();
    let (ok, out, err) = inspect(&[], dir.path());
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    for want in [
        "original (block.*)",
        "fused",
        "MXFP4",
        "block.*.attn.qkv.weight rows 0..64",
        "valid",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }

    let (ok, out, _) = inspect(&["--json", "--ctx", "100"], dir.path());
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["layout"], "Original");
    assert_eq!(v["valid"], true);
    assert_eq!(v["gpu"]["ctx"], 100);
    // Sliding layers keep window + one prefill chunk, but never more than the context.
    assert_eq!(v["gpu"]["kv_positions_sliding"], 100);

    let t = edit(
        ws.original_tensors(),
        "block.1.mlp.mlp2_weight.scales",
        |t| t.data[3] = 0xFF,
    );
    write_safetensors(dir.path(), t, 1).unwrap();
    let (ok, out, err) = inspect(&[], dir.path());
    assert!(!ok, "a NaN scale passed:\n{out}");
    assert!(err.contains("block.1.mlp.mlp2_weight.scales"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");

    let (ok, out, _) = inspect(&["--json"], dir.path());
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
}

#[test]
fn parallel_upload_writes_every_byte() {
    // Above the per-thread minimum of 4 MiB, so several threads copy; an odd length, so the
    // padding is written too.
    let gpu = gpu();
    let mut rng = common::Rng::new(SEED);
    let data = rng.bytes((9 << 20) + 3);
    let buf = gpu.upload_parallel("parallel upload", &data).unwrap();
    gpu.queue.submit([]);
    assert!(gpu.read(&buf).unwrap() == data, "bytes differ after upload");
    let padded = gpu.read_range(&buf, 0, data.len() as u64 + 1).unwrap();
    assert_eq!(padded[data.len()], 0, "padding not zero");

    // Pieces of odd sizes land back to back, as one concatenation.
    let (a, b, c) = (
        &data[..(5 << 20) + 1],
        &data[1000..1003],
        &data[7..(4 << 20) + 7],
    );
    let buf = gpu.upload_gather("parallel gather", &[a, b, c]).unwrap();
    gpu.queue.submit([]);
    assert!(
        gpu.read(&buf).unwrap() == [a, b, c].concat(),
        "gathered bytes differ"
    );
}
