"""Every quantisation on a checkpoint whose dimensions are not multiples of the kernels' blocks.

The tiny checkpoint here has a vision hidden size of 24 (3 heads), a vision MLP of 52, a text hidden
size of 40 with 5 query heads and 1 KV head, a text MLP of 88 and a vocabulary of 1,297 ids: none is a
multiple of 32 or 64. The quantised plans must answer it in every generation mode (the INT8 vision
linears zero-pad their input to 32 columns; decoder matrices whose input does not tile stay in float),
and AutoRound weights whose group size does not divide the input size must load exactly.
"""
import json
import pathlib

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native.checkpoint import write_random_checkpoint, write_safetensors

VISION = {"hidden_size": 24, "num_attention_heads": 3, "num_hidden_layers": 2, "intermediate_size": 52}
TEXT = {"hidden_size": 40, "intermediate_size": 88, "num_hidden_layers": 2, "num_attention_heads": 5,
        "num_key_value_heads": 1}
QUANTIZATIONS = ["none", "int8", "int4", "int4-b128", "int4-visf", "int8-visf"]
MODES = ["slow", "fast", "hybrid"]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj"]


@pytest.fixture(scope="module")
def awkward(tmp_path_factory) -> str:
    return write_random_checkpoint(tmp_path_factory.mktemp("awkward") / "ckpt", VISION, TEXT, seed=7, std=0.5)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return (np.random.default_rng(3).random((61, 93, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def engines(awkward):
    return {q: la.Engine(awkward, threads=2, quantization=q, packed_cache=False) for q in QUANTIZATIONS}


def test_dimensions_are_awkward(awkward):
    cfg = json.loads((pathlib.Path(awkward) / "config.json").read_text())
    sizes = [cfg["vision_config"]["hidden_size"], cfg["vision_config"]["intermediate_size"],
             cfg["text_config"]["hidden_size"], cfg["text_config"]["intermediate_size"], cfg["text_config"]["vocab_size"]]
    assert all(s % 32 for s in sizes), sizes


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
@pytest.mark.parametrize("mode", MODES)
def test_every_quantisation_answers_in_every_mode(engines, image, quantization, mode):
    engine = engines[quantization]
    r = engine.detect(image, ["cat", "dog"], generation_mode=mode, max_new_tokens=20)
    assert r.generated_ids and r.stop_reason
    assert all(0 <= t < engine.vocab_size for t in r.generated_ids)
    assert r.answer == engine.decode(r.generated_ids)


@pytest.mark.parametrize("mode", MODES)
def test_float_vision_plans_are_token_exact(engines, image, mode):
    # "-visf" keeps the tower in float32 and every decoder matrix here stays float (no input size tiles),
    # so the int4-visf answer is the float answer.
    a = engines["none"].detect(image, ["cat"], generation_mode=mode, max_new_tokens=20)
    b = engines["int4-visf"].detect(image, ["cat"], generation_mode=mode, max_new_tokens=20)
    assert a.generated_ids == b.generated_ids


@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_padded_int8_vision_matches_float(engines, image, quantization):
    # INT8 weights and activations: relative error ~ (2.8/127)²/12 ≈ 4e-5 per matrix (README, INT4), times
    # the 8 linears of the two blocks, well inside 1e-3; a wrong padding (garbage in the padded columns,
    # or misaligned rows) gives an error of order 1.
    px, grid = engines["none"].preprocess(image)
    ref = engines["none"].vision_features(px, grid)
    got = engines[quantization].vision_features(px, grid)
    nmse = float(((got - ref) ** 2).sum() / (ref ** 2).sum())
    assert 0 < nmse < 1e-3, nmse


# ---- AutoRound weights with a group size that does not divide K ----

def _pack_rows(codes: np.ndarray) -> np.ndarray:
    """[K, N] 4-bit codes → [ceil(K/8), N] int32 words, low nibble first (GPTQ layout along K)."""
    k, n = codes.shape
    padded = np.zeros(((k + 7) // 8 * 8, n), dtype=np.uint32)
    padded[:k] = codes
    words = np.zeros((padded.shape[0] // 8, n), dtype=np.uint32)
    for i in range(8):
        words |= padded[i::8] << np.uint32(4 * i)
    return words.view(np.int32)


def _pack_cols(codes: np.ndarray) -> np.ndarray:
    """[G, N] codes → [G, ceil(N/8)] int32 words, low nibble first (GPTQ qzeros layout)."""
    g, n = codes.shape
    padded = np.zeros((g, (n + 7) // 8 * 8), dtype=np.uint32)
    padded[:, :n] = codes
    words = np.zeros((g, padded.shape[1] // 8), dtype=np.uint32)
    for i in range(8):
        words |= padded[:, i::8] << np.uint32(4 * i)
    return words.view(np.int32)


def _read_bf16_safetensors(path: pathlib.Path) -> dict:
    """name → float32 array of a bf16 safetensors file (the layout checkpoint.write_safetensors writes)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "BF16"
        a, b = meta["data_offsets"]
        bits = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.uint16).astype(np.uint32) << np.uint32(16)
        out[name] = bits.view(np.float32).reshape(meta["shape"])
    return out


@pytest.fixture(scope="module", params=[32, 64])
def autoround_awkward(awkward, tmp_path_factory, request):
    """The awkward checkpoint with its decoder linears as AutoRound W4A16 tensors of group size g
    (input sizes 40 and 88: neither group size divides both), plus the exact float weights they hold."""
    group = request.param
    src = pathlib.Path(awkward)
    out = tmp_path_factory.mktemp(f"autoround-g{group}")
    for f in src.iterdir():
        if f.name != "model.safetensors" and f.is_file():
            (out / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "auto-round", "bits": 4, "group_size": group, "sym": True,
                                  "packing_format": "auto_round:auto_gptq"}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))

    tensors = _read_bf16_safetensors(src / "model.safetensors")
    rng = np.random.default_rng(11)
    entries, exact = [], {}
    for name, value in tensors.items():
        base = name[: -len(".weight")] if name.endswith(".weight") else None
        if base and base.startswith("language_model.model.layers.") and any(base.endswith(l) for l in LINEARS):
            n_out, k = value.shape
            groups = -(-k // group)
            codes = rng.integers(0, 16, size=(k, n_out)).astype(np.uint32)
            scales = (rng.random((groups, n_out)) * 0.05 + 0.01).astype(np.float16)
            zeros = np.full((groups, n_out), 7, dtype=np.uint32)  # GPTQ stores zero − 1
            exact[base] = ((codes.astype(np.float64) - 8) * np.repeat(scales.astype(np.float64), group, axis=0)[:k]).T
            for suffix, arr, dtype in ((".qweight", _pack_rows(codes), "I32"), (".qzeros", _pack_cols(zeros), "I32"),
                                       (".scales", scales, "F16")):
                entries.append((base + suffix, arr.shape, dtype, lambda a=arr: a))
            continue
        entries.append((name, value.shape, "F32", lambda v=value: np.asarray(v, dtype=np.float32)))
    write_safetensors(out / "model.safetensors", entries)
    return out, exact


@pytest.mark.parametrize("quantization", ["none", "int4", "int8"])
def test_autoround_group_not_dividing_k(autoround_awkward, image, quantization):
    ckpt, exact = autoround_awkward
    engine = la.Engine(str(ckpt), threads=2, quantization=quantization, packed_cache=False)
    if quantization == "none":
        for name, w in exact.items():
            np.testing.assert_array_equal(engine.core.decoder_weight(name).astype(np.float64), w, err_msg=name)
    r = engine.point(image, "the circle", max_new_tokens=12)
    assert r.generated_ids and r.stop_reason
