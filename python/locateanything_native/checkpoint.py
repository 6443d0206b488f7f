"""Writing checkpoints in the released layout: safetensors (bf16/f32) and configs, with random
weights. Used by the demo (`locateanything --demo`) and by bench/ to make full-size random models."""
from __future__ import annotations

import json
import os
import pathlib
import struct
from typing import Callable

import numpy as np

# The LocateAnything added tokens in id order (Qwen2.5 specials, then the model's own).
_QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
_LA_SPECIALS = ["<IMG_CONTEXT>", "<img>", "</img>", "<box>", "</box>", "<quad>", "</quad>", "<ref>", "</ref>",
                "<interval>", "</interval>", "<text_mask>"]
ADDED_TOKENS = _QWEN_SPECIALS + _LA_SPECIALS + [f"<{i}>" for i in range(1001)] + ["<null>", "<switch>", "</c>"]
_NON_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                "<|repo_name|>", "<|file_sep|>"}


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def write_safetensors(path: str | os.PathLike, entries: list[tuple[str, tuple[int, ...], str, Callable[[], np.ndarray]]]) -> None:
    """Writes (name, shape, dtype, make) entries; dtype is BF16, F16, F32 or I32 and make() returns the
    values. Tensors are produced one at a time, so a full-size checkpoint never sits in memory."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4}
    header, offset = {}, 0
    for name, shape, dtype, _ in entries:
        n = int(np.prod(shape)) if len(shape) else 1
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n * sizes[dtype]]}
        offset += n * sizes[dtype]
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, dtype, make in entries:
            data = np.asarray(make())
            if tuple(data.shape) != tuple(shape):
                raise ValueError(f"{name}: made shape {data.shape}, declared {tuple(shape)}")
            if dtype == "BF16":
                f.write(to_bf16_bits(data).tobytes())
            else:
                f.write(np.ascontiguousarray(data, dtype={"F16": np.float16, "F32": np.float32, "I32": np.int32}[dtype]).tobytes())


def tensor_shapes(config: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of the released layout with its shape, from a config.json dict (tied head not stored)."""
    v, t = config["vision_config"], config["text_config"]
    vh, vi, p = v["hidden_size"], v["intermediate_size"], v.get("patch_size", 14)
    mh, mw = v.get("merge_kernel_size", [2, 2])
    th, ti, heads, kv = t["hidden_size"], t["intermediate_size"], t["num_attention_heads"], t["num_key_value_heads"]
    hd = th // heads
    out = [
        ("vision_model.patch_embed.proj.weight", (vh, 3, p, p)),
        ("vision_model.patch_embed.proj.bias", (vh,)),
        ("vision_model.patch_embed.pos_emb.weight", (v["init_pos_emb_height"], v["init_pos_emb_width"], vh)),
    ]
    for i in range(v["num_hidden_layers"]):
        b = f"vision_model.encoder.blocks.{i}."
        out += [
            (b + "norm0.weight", (vh,)), (b + "norm0.bias", (vh,)), (b + "norm1.weight", (vh,)), (b + "norm1.bias", (vh,)),
            (b + "wqkv.weight", (3 * vh, vh)), (b + "wqkv.bias", (3 * vh,)), (b + "wo.weight", (vh, vh)), (b + "wo.bias", (vh,)),
            (b + "mlp.fc0.weight", (vi, vh)), (b + "mlp.fc0.bias", (vi,)), (b + "mlp.fc1.weight", (vh, vi)),
            (b + "mlp.fc1.bias", (vh,)),
        ]
    out += [("vision_model.encoder.final_layernorm.weight", (vh,)), ("vision_model.encoder.final_layernorm.bias", (vh,))]
    md = vh * mh * mw
    out += [("mlp1.0.weight", (md,)), ("mlp1.0.bias", (md,)), ("mlp1.1.weight", (th, md)), ("mlp1.1.bias", (th,)),
            ("mlp1.3.weight", (th, th)), ("mlp1.3.bias", (th,))]
    out += [("language_model.model.embed_tokens.weight", (t["vocab_size"], th))]
    for i in range(t["num_hidden_layers"]):
        b = f"language_model.model.layers.{i}."
        out += [
            (b + "input_layernorm.weight", (th,)), (b + "post_attention_layernorm.weight", (th,)),
            (b + "self_attn.q_proj.weight", (heads * hd, th)), (b + "self_attn.q_proj.bias", (heads * hd,)),
            (b + "self_attn.k_proj.weight", (kv * hd, th)), (b + "self_attn.k_proj.bias", (kv * hd,)),
            (b + "self_attn.v_proj.weight", (kv * hd, th)), (b + "self_attn.v_proj.bias", (kv * hd,)),
            (b + "self_attn.o_proj.weight", (th, heads * hd)),
            (b + "mlp.gate_proj.weight", (ti, th)), (b + "mlp.up_proj.weight", (ti, th)), (b + "mlp.down_proj.weight", (th, ti)),
        ]
    out += [("language_model.model.norm.weight", (th,))]
    return out


def _random_tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
    if name.endswith(("norm0.weight", "norm1.weight", "layernorm.weight", "norm.weight", "mlp1.0.weight")):
        return np.ones(shape, dtype=np.float32)
    if name.endswith(("norm0.bias", "norm1.bias", "layernorm.bias", "mlp1.0.bias")):
        return np.zeros(shape, dtype=np.float32)
    return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)


def write_random_weights(out_dir: str | os.PathLike, config: dict, seed: int = 0, std: float = 0.02,
                         max_shard_bytes: int = 4 << 30) -> None:
    """Random N(0, std) bf16 weights for `config` (norms at 1), sharded like the release when large."""
    out_dir = pathlib.Path(out_dir)
    rng = np.random.default_rng(seed)
    shapes = tensor_shapes(config)
    shards: list[list[tuple[str, tuple[int, ...]]]] = []
    current: list[tuple[str, tuple[int, ...]]] = []
    size = 0
    for name, shape in shapes:
        nbytes = int(np.prod(shape)) * 2
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)

    def entries(shard):
        return [(n, s, "BF16", lambda n=n, s=s: _random_tensor(rng, n, s, std)) for n, s in shard]

    if len(shards) == 1:
        write_safetensors(out_dir / "model.safetensors", entries(shards[0]))
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(out_dir / fname, entries(shard))
        weight_map.update({n: fname for n, _ in shard})
    total = sum(int(np.prod(s)) * 2 for _, s in shapes)
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level alphabet: printable bytes map to themselves, the rest to U+0100 onwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def write_byte_tokenizer(out_dir: str | os.PathLike, model_max_length: int = 16384) -> dict[str, int]:
    """A minimal byte-level BPE tokenizer (256 byte tokens, a merge chain for "none") plus all the
    LocateAnything added tokens, in the released file layout. Returns the added tokens' ids."""
    out_dir = pathlib.Path(out_dir)
    alphabet = _bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = [("n", "o"), ("no", "n"), ("non", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = {tok: len(vocab) + i for i, tok in enumerate(ADDED_TOKENS)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (out_dir / "added_tokens.json").write_text(json.dumps(added, indent=1))
    decoder = {
        str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": tok not in _NON_SPECIAL}
        for tok, i in added.items()
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "added_tokens_decoder": decoder, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "model_max_length": model_max_length, "tokenizer_class": "Qwen2Tokenizer", "clean_up_tokenization_spaces": False,
    }, indent=1))
    return {**added, "none": vocab["none"], "__vocab_size__": len(vocab) + len(added)}


def make_config(vision: dict, text: dict, ids: dict[str, int]) -> dict:
    """config.json in the released layout; token ids from `ids` (added-token name → id)."""
    return {
        "architectures": ["LocateAnythingForConditionalGeneration"],
        "model_type": "locateanything",
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": True,
        "image_token_index": ids["<IMG_CONTEXT>"],
        "box_start_token_id": ids["<box>"],
        "box_end_token_id": ids["</box>"],
        "coord_start_token_id": ids["<0>"],
        "coord_end_token_id": ids["<1000>"],
        "ref_start_token_id": ids["<ref>"],
        "ref_end_token_id": ids["</ref>"],
        "none_token_id": ids["none"],
        "vision_config": {"model_type": "moonvit", "patch_size": 14, "merge_kernel_size": [2, 2], **vision},
        "text_config": {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "tie_word_embeddings": True, "use_sliding_window": False, "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"], "block_size": 6, "causal_attn": False,
            "text_mask_token_id": ids["<text_mask>"], "null_token_id": ids["<null>"],
            "switch_token_id": ids["<switch>"], **text,
        },
    }


def write_preprocessor_config(out_dir: str | os.PathLike, in_token_limit: int = 25600) -> None:
    out_dir = pathlib.Path(out_dir)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "auto_map": {"AutoImageProcessor": "image_processing_locateanything.LocateAnythingImageProcessor",
                     "AutoProcessor": "processing_locateanything.LocateAnythingProcessor"},
        "image_processor_type": "LocateAnythingImageProcessor", "merge_kernel_size": [2, 2],
        "in_token_limit": in_token_limit}, indent=1))


def write_random_checkpoint(out_dir: str | os.PathLike, vision: dict, text: dict, seed: int = 0, std: float = 0.02,
                            comment: str = "RANDOM weights made by locateanything_native: answers are meaningless") -> str:
    """A complete random checkpoint folder in the released layout: the byte-level tokenizer, config.json
    with `vision` / `text` dimensions (any sizes: tests use awkward ones), preprocessor config and bf16
    weights. Returns the folder."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = write_byte_tokenizer(out)
    vocab_size = ids.pop("__vocab_size__")
    config = make_config({"init_pos_emb_height": 8, "init_pos_emb_width": 8, **vision},
                         {"vocab_size": vocab_size, **text}, ids)
    config["_comment"] = comment
    (out / "config.json").write_text(json.dumps(config, indent=1))
    write_preprocessor_config(out)
    write_random_weights(out, config, seed=seed, std=std)
    return str(out)


def demo_checkpoint(cache_dir: str | os.PathLike | None = None) -> str:
    """A tiny RANDOM checkpoint (answers are meaningless) in the released layout, made once and cached:
    it lets the whole pipeline run on a fresh machine without the real weights."""
    env_cache: str | pathlib.Path = os.environ.get("LOCATEANYTHING_CACHE",
                                                   pathlib.Path.home() / ".cache" / "locateanything_native")
    base = pathlib.Path(cache_dir or env_cache)
    out = base / "demo-random-tiny-v1"
    if (out / "model.safetensors").is_file():
        return str(out)
    tmp = base / f"demo-random-tiny-v1.tmp{os.getpid()}"
    write_random_checkpoint(
        tmp,
        {"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 64},
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2},
        seed=1234, std=0.5, comment="RANDOM demo weights made by locateanything_native: answers are meaningless")
    if not out.exists():
        tmp.rename(out)
    return str(out)
