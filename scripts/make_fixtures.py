#!/usr/bin/env python3
"""Golden test fixtures for oss-wgpu: tiny gpt-oss checkpoints plus Hugging Face transformers outputs.

What it writes (default: tests/fixtures/ of this repository):

  tiny-a/, tiny-b/       two tiny gpt-oss checkpoints in the Hugging Face hub's MXFP4 layout:
                         config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
                         model-00000-of-00001.safetensors, model-00001-of-00001.safetensors,
                         model.safetensors.index.json
  logits_<case>.npy      f32 [prompt_len, vocab_size]: transformers' logits at every prompt position
  goldens.json           versions, per-model RoPE facts, and per case: prompt text and ids, greedy ids,
                         the .npy name, plus statistics that show what the case exercises

Usage:
  python3 scripts/make_fixtures.py            # (re)generate tests/fixtures
  python3 scripts/make_fixtures.py --check    # regenerate into a temp dir, compare with the committed
                                              # fixtures, print PASS/FAIL, exit 1 on any mismatch

Everything is deterministic: random numbers come from numpy's legacy RandomState (whose streams numpy
keeps stable across versions), one stream per tensor, seeded from the model seed and the tensor name;
BF16 rounding and MXFP4 packing are done here in numpy; the safetensors files are written by our own
small writer, so their bytes depend on nothing but this script. The references are computed with
transformers in float32 on the CPU, one thread.

Besides transformers, the script runs its own float64 forward pass written from the project's gpt-oss
fact sheet (forward pass, §4) and asserts that it agrees with transformers; with that reference it
also measures how much each classic porting bug (rounded YaRN ramp, no sinks, no sliding window,
gate/up split as halves, no clamp) would change the logits, so a test built on these fixtures is known
to catch them.
"""

import os

# CPU only, before torch is imported anywhere.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import hashlib
import json
import math
import re
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures"

# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

# The fixed training text of the tiny byte-level BPE. The first lines repeat the harmony header
# words (at the start of a line, i.e. without a leading space, as they follow <|start|> or
# <|channel|>) so that some of them become single tokens.
TRAIN_TEXT = """system
user
assistant
developer
analysis
final
commentary
system user assistant developer analysis final commentary
The system, the user, the developer and the assistant all send messages.
The analysis channel, the commentary channel and the final channel.
You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Reasoning: medium
# Valid channels: analysis, commentary, final. Channel must be included for every message.
The system speaks first, then the user asks a question, and the assistant answers.
A developer may give instructions to the assistant before the user speaks.
The assistant thinks in the analysis channel and writes the answer in the final channel.
What is two plus two? Two plus two is four. What is the capital of France? It is Paris.
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.
Small models are trained on small texts, and the words they learn are the words they see.
Every message starts with a header, then the content, and then an end marker.
The model reads the prompt, predicts the next token, and repeats until it stops.
"""

# BPE target size before the special tokens are appended (the trainer may stop earlier when no
# pair occurs twice any more; it does, at 381).
BPE_VOCAB_TARGET = 391


def harmony_specials():
    """The harmony special tokens in o200k_harmony's order, read from HARMONY_SPECIALS in
    src/testing/tokenizer.rs so that the list exists once, on the Rust side."""
    src = (REPO / "src" / "testing" / "tokenizer.rs").read_text()
    m = re.search(r"pub const HARMONY_SPECIALS: \[&str; (\d+)\] = \[(.*?)\];", src, re.S)
    assert m, "no HARMONY_SPECIALS in src/testing/tokenizer.rs"
    tokens = re.findall(r'"([^"]+)"', m.group(2))
    assert len(tokens) == int(m.group(1)), tokens
    return tokens


# Harmony special tokens, appended after the ordinary tokens (as in o200k_harmony, where they
# follow the BPE ranks), in that order.
SPECIAL_TOKENS = harmony_specials()


def build_tokenizer():
    """Train the tiny byte-level BPE and add the harmony special tokens. Returns a tokenizers.Tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # GPT-2 style byte level: the regex split, no prefix space; the decoder maps bytes back.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_TARGET,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any text encodes
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator([TRAIN_TEXT], trainer=trainer)
    # special=True: matched in raw text as single tokens, skipped by decode(skip_special_tokens=True).
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS])
    # No post-processor: encode() adds no BOS/EOS (harmony prompts start directly with <|start|>).
    return tok


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------

# Everything that differs between the two tiny models. Shared values are in make_config().
#   gate_up_scales, down_scales: the E8M0 scale bytes of the expert weights are drawn uniformly from
#                these ranges (inclusive): large gate/up weights so that the SwiGLU clamp at 7 bites,
#                small down weights so that the residual stream stays O(1).
#   swiglu_limit is 7.0, the real models' value: transformers 5.17 ignores config.swiglu_limit and
#                hard-codes 7.0 (5.24 reads it), so any other value would make the goldens depend on
#                the transformers version.
MODELS = {
    "tiny-a": dict(
        seed=1038,
        num_hidden_layers=3,  # odd
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA, 2 query heads per KV head; q width 64 = hidden
        num_local_experts=5,
        experts_per_token=3,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_theta=100.0,
        rope_scaling=dict(factor=16.0, beta_fast=1.0, beta_slow=0.125, original_max_position_embeddings=16),
        swiglu_limit=7.0,
        gate_up_scales=(123, 126),
        down_scales=(117, 121),
    ),
    "tiny-b": dict(
        seed=2005,
        num_hidden_layers=4,
        intermediate_size=96,
        num_attention_heads=8,
        num_key_value_heads=2,  # GQA, 4 query heads per KV head; q width 128 != hidden
        num_local_experts=8,
        experts_per_token=4,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        rope_theta=500.0,
        rope_scaling=dict(factor=32.0, beta_fast=2.0, beta_slow=0.0625, original_max_position_embeddings=16),
        swiglu_limit=7.0,
        gate_up_scales=(123, 126),
        down_scales=(117, 121),
    ),
}

HIDDEN = 64
HEAD_DIM = 16
RMS_EPS = 1e-5
# --check: largest logit difference accepted between the committed goldens and a fresh run.
CHECK_ATOL = 1e-4
SWIGLU_ALPHA = 1.702  # fixed in every implementation; not written to config.json (the hub has none)
MODULES_TO_NOT_CONVERT = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]

# Prompt cases. (name, model, kind, text). "harmony" text goes through the tokenizer with its
# special tokens; raw text is plain text. The harmony prompt is the system + user
# example of https://github.com/openai/harmony/blob/main/docs/format.md verbatim.
HARMONY_PROMPT = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n\nReasoning: medium\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
    "<|end|><|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant"
)
CASES = [
    ("a_raw_long", "tiny-a",
     "The quick brown fox jumps over the lazy dog, then the model reads the prompt and stops."),
    ("a_raw_short", "tiny-a", "The"),
    ("b_raw_long", "tiny-b",
     "In 2024, a developer wrote: the assistant must answer in the final channel. Why? Users want clear answers."),
    ("a_harmony", "tiny-a", HARMONY_PROMPT),
]
N_NEW = 12  # greedy tokens per case


def round_up(n, m):
    return (n + m - 1) // m * m


def make_config(name, spec, tok):
    """config.json in Hugging Face naming, laid out like the hub's openai/gpt-oss-20b config."""
    ids = {s: tok.token_to_id(s) for s in SPECIAL_TOKENS}
    rs = spec["rope_scaling"]
    l0 = rs["original_max_position_embeddings"]
    return {
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "eos_token_id": ids["<|return|>"],
        "experts_per_token": spec["experts_per_token"],  # original-config alias the hub also carries
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initial_context_length": l0,  # carried over from the original config; HF ignores it
        "initializer_range": 0.02,
        "intermediate_size": spec["intermediate_size"],
        "layer_types": spec["layer_types"],
        "max_position_embeddings": int(l0 * rs["factor"]),  # = L0 * factor, as on the hub
        "model_type": "gpt_oss",
        "num_attention_heads": spec["num_attention_heads"],
        "num_experts_per_tok": spec["experts_per_token"],
        "num_hidden_layers": spec["num_hidden_layers"],
        "num_key_value_heads": spec["num_key_value_heads"],
        "num_local_experts": spec["num_local_experts"],
        "output_router_logits": False,
        "pad_token_id": ids["<|endoftext|>"],
        "quantization_config": {"modules_to_not_convert": MODULES_TO_NOT_CONVERT, "quant_method": "mxfp4"},
        "rms_norm_eps": RMS_EPS,
        # The hub spelling (transformers 4.x); transformers 5 reads it into config.rope_parameters.
        "rope_scaling": {
            "beta_fast": rs["beta_fast"],
            "beta_slow": rs["beta_slow"],
            "factor": rs["factor"],
            "original_max_position_embeddings": l0,
            "rope_type": "yarn",
            "truncate": False,
        },
        "rope_theta": spec["rope_theta"],
        "router_aux_loss_coef": 0.9,
        "sliding_window": spec["sliding_window"],
        "swiglu_limit": spec["swiglu_limit"],
        "tie_word_embeddings": False,
        "use_cache": True,
        "vocab_size": round_up(tok.get_vocab_size(), 32),
    }


def make_generation_config(tok):
    """generation_config.json like the hub's: eos = [<|return|>, <|endoftext|>, <|call|>]."""
    ids = {s: tok.token_to_id(s) for s in SPECIAL_TOKENS}
    return {
        "bos_token_id": ids["<|startoftext|>"],
        "do_sample": True,  # as on the hub; the goldens below are greedy (do_sample=False)
        "eos_token_id": [ids["<|return|>"], ids["<|endoftext|>"], ids["<|call|>"]],
        "pad_token_id": ids["<|endoftext|>"],
    }


def make_tokenizer_config(cfg):
    return {
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|return|>",
        "model_max_length": cfg["max_position_embeddings"],
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


# ----------------------------------------------------------------------------------------------
# Numbers: BF16 and MXFP4, in numpy
# ----------------------------------------------------------------------------------------------

FP4_LUT = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                   dtype=np.float32)


def to_bf16_bits(x):
    """f32 -> bf16 bit patterns (uint16), round to nearest even. Inputs are finite."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def rng_for(seed, tensor_name):
    """One independent RandomState per tensor, so adding a tensor never shifts another's values."""
    h = hashlib.sha256(f"{seed}:{tensor_name}".encode()).digest()
    return np.random.RandomState(int.from_bytes(h[:4], "little"))


def make_mxfp4(rs, shape_rows, k, scale_range):
    """Random MXFP4 weight of logical shape [*shape_rows, k] ([out, in], blocks along in).

    Returns (blocks uint8 [*rows, k/32, 16], scales uint8 [*rows, k/32], dequantized f32 [*rows, k]).
    Every 32-block holds at least one nibble of magnitude 4 or 6 (code 6 or 7, either sign), so the
    block's scale is the one an MXFP4 quantizer would pick (canonical). Random nibbles include -0 (8).
    """
    assert k % 32 == 0
    g = k // 32
    rows = tuple(shape_rows)
    nib = rs.randint(0, 16, size=rows + (g, 32)).astype(np.uint8)
    pos = rs.randint(0, 32, size=rows + (g,))
    mag = rs.randint(6, 8, size=rows + (g,)).astype(np.uint8)  # 6 -> 4.0, 7 -> 6.0
    sign = rs.randint(0, 2, size=rows + (g,)).astype(np.uint8) << 3
    np.put_along_axis(nib, pos[..., None], (mag | sign)[..., None], axis=-1)
    scales = rs.randint(scale_range[0], scale_range[1] + 1, size=rows + (g,)).astype(np.uint8)
    # Pack: element 2j of a block in the low nibble of byte j, element 2j+1 in the high nibble.
    blocks = (nib[..., 0::2] | (nib[..., 1::2] << 4)).astype(np.uint8)
    deq = FP4_LUT[nib] * np.exp2(scales.astype(np.float32) - 127.0)[..., None]
    return blocks, scales, deq.reshape(rows + (k,)).astype(np.float32)


def make_weights(spec, cfg, tok_size):
    """All tensors of one model.

    Returns (tensors, dense): tensors = ordered list of (hf_name, safetensors dtype, shape, raw bytes)
    in checkpoint order; dense = {hf_name: f32 array} holding what transformers should load, with the
    expert weights dequantized and in transformers' runtime layout [E, in, out].
    """
    seed = spec["seed"]
    V, H, I = cfg["vocab_size"], HIDDEN, spec["intermediate_size"]
    nh, nkv, E = spec["num_attention_heads"], spec["num_key_value_heads"], spec["num_local_experts"]
    qd, kvd = nh * HEAD_DIM, nkv * HEAD_DIM
    tensors, dense = [], {}

    def bf16(name, shape, std, mean=0.0, kind="normal"):
        rs = rng_for(seed, name)
        if kind == "normal":
            x = rs.standard_normal(size=shape) * std + mean
        else:  # uniform [mean - std, mean + std]
            x = rs.uniform(mean - std, mean + std, size=shape)
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            # Rows past the tokenizer are never produced by it (like gpt-oss's padded vocab);
            # lm_head's are made small so that greedy decoding never picks them.
            if name == "lm_head.weight":
                x[tok_size:] *= 0.05
        bits = to_bf16_bits(x.astype(np.float32))
        tensors.append((name, "BF16", tuple(shape), bits.astype("<u2").tobytes()))
        dense[name] = bf16_bits_to_f32(bits)

    def mxfp4(prefix, rows, k, out_first_shape, scale_range):
        rs = rng_for(seed, prefix)
        blocks, scales, deq = make_mxfp4(rs, rows, k, scale_range)
        tensors.append((prefix + "_blocks", "U8", blocks.shape, blocks.tobytes()))
        tensors.append((prefix + "_scales", "U8", scales.shape, scales.tobytes()))
        assert deq.shape == out_first_shape
        dense[prefix] = np.ascontiguousarray(np.swapaxes(deq, 1, 2))  # [E, out, in] -> [E, in, out]

    bf16("model.embed_tokens.weight", (V, H), 1.0)
    for l in range(spec["num_hidden_layers"]):
        p = f"model.layers.{l}."
        bf16(p + "input_layernorm.weight", (H,), 0.5, mean=1.0, kind="uniform")
        bf16(p + "self_attn.q_proj.weight", (qd, H), 1.25 / math.sqrt(H))
        bf16(p + "self_attn.q_proj.bias", (qd,), 0.2)
        bf16(p + "self_attn.k_proj.weight", (kvd, H), 1.25 / math.sqrt(H))
        bf16(p + "self_attn.k_proj.bias", (kvd,), 0.2)
        bf16(p + "self_attn.v_proj.weight", (kvd, H), 1.0 / math.sqrt(H))
        bf16(p + "self_attn.v_proj.bias", (kvd,), 0.1)
        bf16(p + "self_attn.o_proj.weight", (H, qd), 1.0 / math.sqrt(qd))
        bf16(p + "self_attn.o_proj.bias", (H,), 0.1)
        bf16(p + "self_attn.sinks", (nh,), 1.5)
        bf16(p + "post_attention_layernorm.weight", (H,), 0.5, mean=1.0, kind="uniform")
        bf16(p + "mlp.router.weight", (E, H), 0.3)
        bf16(p + "mlp.router.bias", (E,), 0.5)
        # gate_up rows interleave gate (even) and up (odd); blocks along the hidden (input) dim.
        mxfp4(p + "mlp.experts.gate_up_proj", (E, 2 * I), H, (E, 2 * I, H), spec["gate_up_scales"])
        bf16(p + "mlp.experts.gate_up_proj_bias", (E, 2 * I), 0.2)
        mxfp4(p + "mlp.experts.down_proj", (E, H), I, (E, H, I), spec["down_scales"])
        bf16(p + "mlp.experts.down_proj_bias", (E, H), 0.1)
    bf16("model.norm.weight", (H,), 0.5, mean=1.0, kind="uniform")
    bf16("lm_head.weight", (V, H), 0.25)
    return tensors, dense


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

SHARD_NAMES = ["model-00000-of-00001.safetensors", "model-00001-of-00001.safetensors"]  # hub's (n-1) quirk
DTYPE_SIZE = {"BF16": 2, "U8": 1}


def write_safetensors(path, tensors):
    """Minimal safetensors writer: u64 LE header length, JSON header (padded with spaces to 8 bytes),
    then the data. Data is ordered by dtype size (descending) then name, as the safetensors library
    does, so every tensor is aligned to its element size."""
    order = sorted(tensors, key=lambda t: (-DTYPE_SIZE[t[1]], t[0]))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, data in order:
        assert off % DTYPE_SIZE[dt] == 0
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-(8 + len(hb)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for t in order:
            f.write(t[3])


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_checkpoint(d, tensors, cfg, gen_cfg, tok):
    """Two shards plus index. The split falls inside layer 1's experts, between gate_up_proj_blocks and
    gate_up_proj_scales, so a loader must gather one MXFP4 weight from two files."""
    d.mkdir(parents=True, exist_ok=True)
    names = [t[0] for t in tensors]
    cut = names.index("model.layers.1.mlp.experts.gate_up_proj_blocks") + 1
    shards = [tensors[:cut], tensors[cut:]]
    weight_map = {}
    for fname, part in zip(SHARD_NAMES, shards):
        write_safetensors(d / fname, part)
        for t in part:
            weight_map[t[0]] = fname
    total = sum(len(t[3]) for t in tensors)
    write_json(d / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(d / "config.json", cfg)
    write_json(d / "generation_config.json", gen_cfg)
    write_json(d / "tokenizer_config.json", make_tokenizer_config(cfg))
    tok.save(str(d / "tokenizer.json"), pretty=True)


# ----------------------------------------------------------------------------------------------
# Our own float64 reference forward pass (after https://github.com/openai/gpt-oss/blob/main/gpt_oss/torch/model.py),
# with switches for common porting bugs
# ----------------------------------------------------------------------------------------------

def yarn_bounds(cfg, truncate=False):
    """NTK-by-parts ramp bounds as transformers computes them (_compute_yarn_parameters in
    modeling_rope_utils.py); d = head_dim."""
    rs, d, base = cfg["rope_scaling"], cfg["head_dim"], cfg["rope_theta"]
    l0 = rs["original_max_position_embeddings"]

    def corr(rot):
        return d * math.log(l0 / (rot * 2 * math.pi)) / (2 * math.log(base))

    low, high = corr(rs["beta_fast"]), corr(rs["beta_slow"])
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, d - 1)


def yarn_inv_freq_f64(cfg, truncate=False):
    rs, d, base = cfg["rope_scaling"], cfg["head_dim"], cfg["rope_theta"]
    low, high = yarn_bounds(cfg, truncate)
    i = np.arange(d // 2, dtype=np.float64)
    extrap = 1.0 / base ** (2 * i / d)
    interp = extrap / rs["factor"]
    ramp = np.clip((i - low) / (high - low), 0.0, 1.0)
    return interp * ramp + extrap * (1 - ramp), 0.1 * math.log(rs["factor"]) + 1.0


def ref_forward(dense, cfg, ids, truncate=False, sinks=True, window=True, interleaved=True, clamp=True,
                stats=None):
    """Whole-model forward in float64 over the token ids; returns logits [T, V] (numpy f64).

    stats (a dict) receives: clamp counts of gate/up among evaluated (token, selected expert) pairs,
    and the smallest gap between the k-th and (k+1)-th router logits (how close routing is to a flip).
    """
    import torch

    t64 = {k: torch.from_numpy(v).double() for k, v in dense.items()}
    T = len(ids)
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, K, I = cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["intermediate_size"]
    W, lim, eps = cfg["sliding_window"], cfg["swiglu_limit"], cfg["rms_norm_eps"]

    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w

    inv_freq, mscale = yarn_inv_freq_f64(cfg, truncate)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * torch.from_numpy(inv_freq)[None, :]
    cos, sin = torch.cos(ang) * mscale, torch.sin(ang) * mscale  # [T, hd/2]

    def rope(x):  # x [T, heads, hd], half-split rotation
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    qi = torch.arange(T)[:, None]
    kj = torch.arange(T)[None, :]
    x = t64["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        g = lambda n: t64[p + n]  # noqa: E731
        t = rms(x, g("input_layernorm.weight"))
        q = (t @ g("self_attn.q_proj.weight").T + g("self_attn.q_proj.bias")).view(T, nh, hd)
        k = (t @ g("self_attn.k_proj.weight").T + g("self_attn.k_proj.bias")).view(T, nkv, hd)
        v = (t @ g("self_attn.v_proj.weight").T + g("self_attn.v_proj.bias")).view(T, nkv, hd)
        q, k = rope(q), rope(k)
        rep = nh // nkv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # head h uses kv h // rep
        s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(hd)
        allowed = kj <= qi
        if window and cfg["layer_types"][l] == "sliding_attention":
            allowed = allowed & (kj > qi - W)  # W keys including the query itself
        s = s.masked_fill(~allowed[None], float("-inf"))
        if sinks:
            sk = g("self_attn.sinks").view(nh, 1, 1).expand(nh, T, 1)
            pr = torch.softmax(torch.cat([s, sk], dim=-1), dim=-1)[..., :-1]  # sink's share dropped
        else:
            pr = torch.softmax(s, dim=-1)
        o = torch.einsum("hij,jhd->ihd", pr, v).reshape(T, nh * hd)
        x = x + o @ g("self_attn.o_proj.weight").T + g("self_attn.o_proj.bias")

        t = rms(x, g("post_attention_layernorm.weight"))
        r = t @ g("mlp.router.weight").T + g("mlp.router.bias")  # [T, E]
        rs_sorted = torch.sort(r, dim=-1, descending=True).values
        top_v, top_i = torch.topk(r, K, dim=-1)
        wts = torch.softmax(top_v, dim=-1)
        h = torch.einsum("th,ehf->tef", t, g("mlp.experts.gate_up_proj")) + g("mlp.experts.gate_up_proj_bias")
        if interleaved:
            gate, up = h[..., 0::2], h[..., 1::2]
        else:
            gate, up = h[..., :I], h[..., I:]
        sel = torch.zeros(T, E, dtype=torch.bool)
        sel[torch.arange(T)[:, None], top_i] = True
        if stats is not None:
            stats["gate_values"] = stats.get("gate_values", 0) + int(sel.sum()) * I
            stats["gate_clamped"] = stats.get("gate_clamped", 0) + int((gate > lim)[sel].sum())
            stats["up_clamped"] = stats.get("up_clamped", 0) + int((up.abs() > lim)[sel].sum())
            if K < E:
                gap = float((rs_sorted[:, K - 1] - rs_sorted[:, K]).min())
                stats["router_min_gap"] = min(stats.get("router_min_gap", math.inf), gap)
        if clamp:
            gate, up = gate.clamp(max=lim), up.clamp(-lim, lim)
        a = gate * torch.sigmoid(SWIGLU_ALPHA * gate) * (up + 1)
        y = torch.einsum("tei,eih->teh", a, g("mlp.experts.down_proj")) + g("mlp.experts.down_proj_bias")
        comb = torch.zeros(T, E, dtype=torch.float64)
        comb[torch.arange(T)[:, None], top_i] = wts
        x = x + torch.einsum("te,teh->th", comb, y)  # expert bias inside the weighted term
    x = rms(x, t64["model.norm.weight"])
    return (x @ t64["lm_head.weight"].T).numpy()


# ----------------------------------------------------------------------------------------------
# transformers
# ----------------------------------------------------------------------------------------------

def load_hf(d, experts="eager"):
    """The reference model: float32, CPU, MXFP4 dequantized on load, eager attention.

    transformers 5 also dispatches the experts to an "experts implementation" (grouped_mm by default
    where torch has it, else the eager per-expert loop of modeling_gpt_oss.py). The reference pins the
    eager loop (experts="eager"), which every version runs the same way; the default one is loaded
    with experts=None for a comparison that is only recorded. Versions without the switch run eager."""
    import torch
    from transformers import GptOssForCausalLM, Mxfp4Config

    extra = {}
    if experts is not None and _has_experts_switch():
        extra["experts_implementation"] = experts
    model = GptOssForCausalLM.from_pretrained(
        str(d),
        quantization_config=Mxfp4Config(dequantize=True),
        torch_dtype=torch.float32,
        attn_implementation="eager",
        **extra,
    )
    # transformers 5.17 dequantizes the experts to bfloat16 whatever torch_dtype says, and then runs
    # the expert matmuls in bfloat16 (grouped_mm casts the activations to the weight dtype; the eager
    # loop fails on the dtype mismatch). MXFP4 values are exact in bfloat16, so casting the model to
    # float32 changes no weight and makes every version compute in float32. A no-op in 5.24.
    dequant_dtypes = sorted({str(p.dtype).replace("torch.", "") for n, p in model.named_parameters()
                             if n.endswith(("experts.gate_up_proj", "experts.down_proj"))})
    model = model.float()
    model.fixture_dequant_dtypes = dequant_dtypes
    model.eval()
    return model


def _has_experts_switch():
    try:
        from transformers.integrations import moe  # noqa: F401  (transformers 5: experts implementations)
        return True
    except ImportError:
        return False


def check_loaded(model, dense, cfg):
    """The loaded model must hold exactly our intended values (this pins the MXFP4 layout, the nibble
    order and the [E, in, out] transpose) and read every config key the way we meant."""
    import torch

    sd = model.state_dict()
    for name, want in dense.items():
        assert name in sd, f"transformers has no parameter {name}"
        got = sd[name]
        assert got.dtype == torch.float32, (name, got.dtype)
        assert tuple(got.shape) == want.shape, (name, tuple(got.shape), want.shape)
        assert torch.equal(got, torch.from_numpy(want)), f"loaded {name} differs from the intended values"
    extra = sorted(set(k for k in sd if not k.endswith("inv_freq")) - set(dense))
    assert not extra, f"unexpected parameters: {extra}"
    c = model.config
    assert c.num_hidden_layers == cfg["num_hidden_layers"]
    assert c.num_local_experts == cfg["num_local_experts"]
    assert c.num_experts_per_tok == cfg["num_experts_per_tok"]
    assert c.num_key_value_heads == cfg["num_key_value_heads"]
    assert c.head_dim == cfg["head_dim"]
    assert c.sliding_window == cfg["sliding_window"]
    assert list(c.layer_types) == cfg["layer_types"]
    assert c.swiglu_limit == cfg["swiglu_limit"]
    assert c.rms_norm_eps == cfg["rms_norm_eps"]
    for l, layer in enumerate(model.model.layers):
        want = cfg["sliding_window"] if cfg["layer_types"][l] == "sliding_attention" else None
        assert layer.self_attn.sliding_window == want, (l, layer.self_attn.sliding_window)
        assert layer.mlp.experts.limit == cfg["swiglu_limit"]
        assert abs(getattr(layer.mlp.experts, "alpha", SWIGLU_ALPHA) - SWIGLU_ALPHA) < 1e-12
    rp = getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None)
    assert rp["rope_type"] == "yarn" and rp["truncate"] is False, rp
    for key in ("factor", "beta_fast", "beta_slow", "original_max_position_embeddings"):
        assert rp[key] == cfg["rope_scaling"][key], (key, rp[key])


def hf_greedy(model, ids, n_new, eos):
    """Greedy continuation three ways:
      loop       a plain loop that re-runs the whole sequence every step (no cache) and takes the argmax;
                 never stops early. This is the golden.
      gen        model.generate(do_sample=False, eos_token_id=None): KV cache (sliding-window cache
                 layers for sliding layers), EOS stop disabled; should equal loop.
      gen_eos    model.generate(do_sample=False) with the checkpoint's generation_config.json: stops after
                 the first of its eos ids; should equal loop cut after its first eos id.
    Also returns the largest |logit| difference between gen's per-step scores and loop's, and the smallest
    top-1/top-2 gap of loop (how far the argmax is from flipping)."""
    import torch

    seq = list(ids)
    min_gap, loop_steps = math.inf, []
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
            loop_steps.append(logits)
            top2 = torch.topk(logits, 2).values
            min_gap = min(min_gap, float(top2[0] - top2[1]))
            seq.append(int(torch.argmax(logits)))
        loop_ids = seq[len(ids):]
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n_new, eos_token_id=None,
                             return_dict_in_generate=True, output_logits=True)
        gen_ids = out.sequences[0, len(ids):].tolist()
        steps = min(len(out.logits), len(loop_steps))
        gen_vs_loop = max(float((out.logits[i][0] - loop_steps[i]).abs().max()) for i in range(steps))
        gen_eos_ids = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n_new)[0, len(ids):].tolist()
    return loop_ids, gen_ids, gen_eos_ids, gen_vs_loop, min_gap


def cut_after_eos(ids, eos):
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1]
    return list(ids)


def rope_facts(model):
    """inv_freq (f32, as transformers computed it: length head_dim/2) and the YaRN attention scaling
    that multiplies cos and sin."""
    re = model.model.rotary_emb
    inv = re.inv_freq.detach().float().numpy()
    return {
        "inv_freq": [float(v) for v in inv],  # each value is exactly an f32
        "inv_freq_f32_bits": [f"0x{int(b):08x}" for b in inv.view(np.uint32)],
        "attention_scaling": float(re.attention_scaling),
    }


# ----------------------------------------------------------------------------------------------
# Generation of everything
# ----------------------------------------------------------------------------------------------

def generate_all(out, log=print):
    import tokenizers
    import torch
    import transformers

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for n in MODELS:
        if (out / n).exists():
            shutil.rmtree(out / n)
    for f in out.glob("logits_*.npy"):
        f.unlink()

    tok = build_tokenizer()
    tok_size = tok.get_vocab_size()
    special_ids = {s: tok.token_to_id(s) for s in SPECIAL_TOKENS}
    assert list(special_ids.values()) == list(range(tok_size - len(SPECIAL_TOKENS), tok_size))
    log(f"tokenizer: {tok_size} tokens ({tok_size - len(SPECIAL_TOKENS)} BPE + {len(SPECIAL_TOKENS)} special)")

    goldens = {
        "generator": "scripts/make_fixtures.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "reference": "GptOssForCausalLM.from_pretrained(dir, quantization_config=Mxfp4Config(dequantize=True), "
                     "torch_dtype=torch.float32, attn_implementation='eager'"
                     + (", experts_implementation='eager'" if _has_experts_switch() else "") + "), CPU, 1 thread",
        "field_notes": {
            "logits_npy": "f32 little-endian [prompt_len, vocab_size]: logits at every prompt position of one "
                          "uncached forward pass over the prompt",
            "greedy_ids": "N new tokens by argmax, a plain loop re-running the whole sequence each step without "
                          "cache; never stops early",
            "greedy_ids_until_eos": "greedy_ids cut after the first id in generation_config.json's eos_token_id",
            "rope.inv_freq": "transformers' YaRN inverse frequencies, f32, length head_dim/2 (also as f32 bits)",
            "rope.attention_scaling": "YaRN factor multiplying both cos and sin",
            "notes": "diagnostics: agreement of generate() with the loop, of the default experts "
                     "implementation and of our own f64 forward with the reference; argmax and router "
                     "margins; SwiGLU clamp rates; how much each porting bug would move the logits "
                     "(max abs, per our f64 forward)",
        },
        "tokenizer": {"size": tok_size, "special_token_ids": special_ids},
        "models": {},
        "cases": [],
    }

    models, denses, cfgs, default_models = {}, {}, {}, {}
    for name, spec in MODELS.items():
        cfg = make_config(name, spec, tok)
        tensors, dense = make_weights(spec, cfg, tok_size)
        write_checkpoint(out / name, tensors, cfg, make_generation_config(tok), tok)
        model = load_hf(out / name)
        check_loaded(model, dense, cfg)
        experts_dtype = model.fixture_dequant_dtypes
        # Our f64 YaRN must agree with the f32 one transformers computed.
        facts = rope_facts(model)
        mine, mscale = yarn_inv_freq_f64(cfg)
        assert np.allclose(facts["inv_freq"], mine, rtol=1e-6, atol=0), (facts["inv_freq"], mine)
        assert abs(facts["attention_scaling"] - mscale) < 1e-12
        low, high = yarn_bounds(cfg)
        facts.update({"yarn_low": low, "yarn_high": high,
                      "blended_dims": [i for i in range(HEAD_DIM // 2) if low < i < high]})
        size = sum((out / name / f).stat().st_size for f in os.listdir(out / name))
        goldens["models"][name] = {
            "dir": name,
            "vocab_size": cfg["vocab_size"],
            "eos_token_ids": make_generation_config(tok)["eos_token_id"],
            "rope": facts,
            "bytes": size,
            "experts_dtype_after_dequantize": experts_dtype,
        }
        models[name], denses[name], cfgs[name] = model, dense, cfg
        default_models[name] = load_hf(out / name, experts=None)  # for a recorded comparison only
        goldens["models"][name]["experts_implementation"] = getattr(model.config, "_experts_implementation", None)
        goldens["models"][name]["experts_implementation_default"] = getattr(
            default_models[name].config, "_experts_implementation", None)
        log(f"{name}: loaded and verified; yarn low={low:.4f} high={high:.4f}, "
            f"attention_scaling={facts['attention_scaling']:.6f}, {size} bytes")

    # The tokenizer must round-trip through transformers' loader the same way.
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(out / "tiny-a"))

    import torch

    for case, mname, text in CASES:
        model, dense, cfg = models[mname], denses[mname], cfgs[mname]
        ids = tok.encode(text).ids
        assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids, "AutoTokenizer disagrees"
        assert hf_tok(text)["input_ids"] == ids, "AutoTokenizer adds tokens by default"
        assert tok.decode(ids, skip_special_tokens=False) == text
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
        assert logits.shape == (len(ids), cfg["vocab_size"]) and np.isfinite(logits).all()
        with torch.no_grad():
            dl = default_models[mname](input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
        default_diff = float(np.abs(dl - logits).max())
        npy = f"logits_{case}.npy"
        np.save(out / npy, np.ascontiguousarray(logits, dtype="<f4"))

        eos = make_generation_config(tok)["eos_token_id"]
        loop_ids, gen_ids, gen_eos_ids, gen_vs_loop, min_gap = hf_greedy(model, ids, N_NEW, eos)
        until_eos = cut_after_eos(loop_ids, eos)
        assert max(loop_ids) < tok_size, "greedy picked a padding row"

        stats = {}
        ref = ref_forward(dense, cfg, ids, stats=stats)
        ref_diff = float(np.abs(ref - logits).max())
        assert ref_diff < 1e-3, f"{case}: our f64 reference differs from transformers by {ref_diff}"
        bugs = {}
        for bug, kw in [("yarn_truncated", dict(truncate=True)), ("no_sinks", dict(sinks=False)),
                        ("no_sliding_window", dict(window=False)), ("gate_up_halves", dict(interleaved=False)),
                        ("no_swiglu_clamp", dict(clamp=False))]:
            bugs[bug] = float(np.abs(ref_forward(dense, cfg, ids, **kw) - ref).max())

        entry = {
            "name": case,
            "model": mname,
            "prompt_text": text,
            "prompt_ids": ids,
            "greedy_ids": loop_ids,
            "greedy_ids_until_eos": until_eos,
            "n_new": N_NEW,
            "logits_npy": npy,
            "logits_shape": list(logits.shape),
            "notes": {
                "generate_ids": gen_ids,
                "generate_with_eos_stop_ids": gen_eos_ids,
                "generate_matches_loop": gen_ids == loop_ids and gen_eos_ids == until_eos,
                "generate_vs_loop_step_logits_max_abs": gen_vs_loop,
                "greedy_min_top1_top2_gap": min_gap,
                "greedy_hits_eos_at": [i for i, t in enumerate(loop_ids) if t in set(eos)],
                "greedy_distinct_tokens": len(set(loop_ids)),
                "logits_abs_max": float(np.abs(logits).max()),
                "logits_std": float(logits[:, :tok_size].std()),
                "f64_reference_max_abs_diff": ref_diff,
                "experts_default_impl_vs_eager_max_abs": default_diff,
                "router_min_gap_kth_vs_next": stats.get("router_min_gap"),
                "swiglu_gate_clamped_fraction": stats["gate_clamped"] / stats["gate_values"],
                "swiglu_up_clamped_fraction": stats["up_clamped"] / stats["gate_values"],
                "logit_change_if_bug": bugs,
            },
        }
        goldens["cases"].append(entry)
        log(f"{case}: {len(ids)} prompt tokens, greedy {loop_ids}, "
            f"generate {'==' if entry['notes']['generate_matches_loop'] else '!='} loop, "
            f"min gap {min_gap:.4f}, f64 ref diff {ref_diff:.2e}")
    write_json(out / "goldens.json", goldens)
    return goldens


# ----------------------------------------------------------------------------------------------
# --check
# ----------------------------------------------------------------------------------------------

def check(fixtures):
    import tokenizers
    import torch
    import transformers

    fixtures = Path(fixtures)
    committed = json.loads((fixtures / "goldens.json").read_text())
    print(f"committed goldens made with transformers {committed['transformers_version']}, "
          f"torch {committed['torch_version']}, tokenizers {committed['tokenizers_version']}, "
          f"numpy {committed['numpy_version']}")
    print(f"this run:                   transformers {transformers.__version__}, torch {torch.__version__}, "
          f"tokenizers {tokenizers.__version__}, numpy {np.__version__}")
    failures, lines = [], []

    def result(ok, what):
        lines.append(f"{'PASS' if ok else 'FAIL'}  {what}")
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="oss-wgpu-fixtures-") as tmp:
        fresh = generate_all(tmp, log=lambda *a: None)
        tmp = Path(tmp)
        # Every checkpoint file byte-identical (weights, configs, index, tokenizer).
        for name in MODELS:
            a_files = sorted(os.listdir(fixtures / name))
            b_files = sorted(os.listdir(tmp / name))
            result(a_files == b_files, f"{name}: same file list {a_files}" + ("" if a_files == b_files else f" (now {b_files})"))
            for f in a_files:
                if f not in b_files:
                    continue
                same = (fixtures / name / f).read_bytes() == (tmp / name / f).read_bytes()
                if not same and f == "tokenizer.json":
                    # Serialization may change with the tokenizers version; the content must not.
                    ja, jb = (json.loads((d / name / f).read_text()) for d in (fixtures, tmp))
                    same_content = ja["model"]["vocab"] == jb["model"]["vocab"] and \
                        [list(m) if isinstance(m, list) else m.split(" ") for m in ja["model"]["merges"]] == \
                        [list(m) if isinstance(m, list) else m.split(" ") for m in jb["model"]["merges"]] and \
                        [t["content"] for t in ja["added_tokens"]] == [t["content"] for t in jb["added_tokens"]]
                    result(same_content, f"{name}/{f}: bytes differ, vocab/merges/specials "
                                         f"{'identical' if same_content else 'DIFFER'}")
                else:
                    result(same, f"{name}/{f}: byte-identical")
        # Goldens.
        cmodels = {m["dir"]: m for m in committed["models"].values()}
        for name, m in fresh["models"].items():
            c = cmodels[name]
            dinv = float(np.max(np.abs(np.array(c["rope"]["inv_freq"]) - np.array(m["rope"]["inv_freq"])) /
                                np.abs(np.array(c["rope"]["inv_freq"]))))
            bits_same = c["rope"]["inv_freq_f32_bits"] == m["rope"]["inv_freq_f32_bits"]
            result(dinv <= 1e-6, f"{name}: inv_freq max rel diff {dinv:.2e} (f32 bits {'identical' if bits_same else 'differ'})")
            result(abs(c["rope"]["attention_scaling"] - m["rope"]["attention_scaling"]) < 1e-9,
                   f"{name}: attention_scaling {m['rope']['attention_scaling']!r}")
        ccases = {c["name"]: c for c in committed["cases"]}
        result(set(ccases) == {c["name"] for c in fresh["cases"]}, "same case list")
        for case in fresh["cases"]:
            c = ccases.get(case["name"])
            if c is None:
                continue
            same = c["prompt_ids"] == case["prompt_ids"]
            result(same, f"{case['name']}: prompt ids identical ({len(c['prompt_ids'])})"
                         + ("" if same else f" (now {case['prompt_ids']})"))
            la = np.load(fixtures / c["logits_npy"])
            lb = np.load(tmp / case["logits_npy"])
            ok = la.shape == lb.shape
            diff = float(np.abs(la - lb).max()) if ok else math.inf
            # Different torch builds sum f32 matmuls in different orders: 1.5e-5 was seen between
            # torch 2.15 and 2.11 on these fixtures; 1e-4 is still 10x under the Rust tests' 1e-3.
            result(ok and diff <= CHECK_ATOL, f"{case['name']}: logits {list(la.shape)} max abs diff {diff:.3e} (<= {CHECK_ATOL:g})")
            same = c["greedy_ids"] == case["greedy_ids"]
            result(same, f"{case['name']}: greedy ids identical {case['greedy_ids']}"
                         + ("" if same else f" (committed {c['greedy_ids']})"))
            same = c["greedy_ids_until_eos"] == case["greedy_ids_until_eos"]
            result(same, f"{case['name']}: greedy ids until eos identical ({len(case['greedy_ids_until_eos'])} tokens)"
                         + ("" if same else f" (committed {c['greedy_ids_until_eos']})"))
            gm = case["notes"]["generate_matches_loop"]
            lines.append(f"info  {case['name']}: generate() {'matches' if gm else 'DIFFERS FROM'} the plain loop "
                         f"in this version")
    print("\n".join(lines))
    print(f"\n{'PASS' if not failures else 'FAIL'}: {len(lines)} lines, {len(failures)} failure(s)")
    return 0 if not failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture directory (default tests/fixtures)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare with the fixtures in --out")
    args = ap.parse_args()
    if args.check:
        sys.exit(check(args.out))
    generate_all(args.out)


if __name__ == "__main__":
    main()
