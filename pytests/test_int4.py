"""INT4 / INT8 decoders on the fixtures: prefill-logit error against the float32 goldens (printed per
case and bounded), the packed weight cache, and the memory the formats take."""
import json
import time

import numpy as np
import pytest

import locateanything_native as la

# Bounds derived from the formats, not from the measured values:
# - Q4 weights (blocks of 32, scale = max|w|/8): rounding noise is uniform with step Δ = max|w|/8, so
#   its variance is Δ²/12; for near-Gaussian rows max|w| over 32 samples stays below ~2.8σ, giving a
#   relative error of (2.8/8)²/12 ≈ 0.010 per matrix. In this residual network the logit error adds
#   up over the matrices that write into the residual stream on the way to the logits: the embedding,
#   o_proj and down_proj of both layers (5; the Q8 head adds ~(2.8/127)²/12 ≈ 4e-5, the INT8
#   activations about as much). 5 × 0.010 + small terms → 0.06.
# - Blocks of 128 have a larger max over more samples (~3.3σ): (3.3/8)²/12 ≈ 0.014 per matrix → 0.08.
# - INT8 weights and activations: (2.8/127)²/12 ≈ 4e-5 per matrix, ×5 (+ activations) → 5e-4.
BOUNDS = {"int4": 0.06, "int4-b128": 0.08, "int8": 5e-4}


def _cases(fixtures_dir):
    return sorted(p.stem for p in (fixtures_dir / "tiny-a" / "cases").glob("*.json"))


def _nmse(engine, fixtures_dir, case):
    meta = json.loads((fixtures_dir / "tiny-a" / "cases" / f"{case}.json").read_text())
    npz = np.load(fixtures_dir / "tiny-a" / "cases" / f"{case}.npz")
    rows = np.load(fixtures_dir / "tiny-a" / "vision" / f"{meta['image']}.npz")["mlp1_out"]
    logits = engine.prefill_logits(npz["input_ids"].tolist(), rows, last_n=8)
    got = np.concatenate([logits[:, 151643:], logits[:, :151643:97]], axis=1)
    gold = np.concatenate([npz["prefill_last8_special_logits"], npz["prefill_last8_stride97_logits"]], axis=1)
    return float(((got - gold) ** 2).sum() / (gold ** 2).sum())


@pytest.mark.parametrize("quantization", sorted(BOUNDS))
def test_prefill_logit_nmse_against_float_goldens(fixtures_dir, quantization, capsys):
    engine = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization=quantization)
    values = {case: _nmse(engine, fixtures_dir, case) for case in _cases(fixtures_dir)}
    with capsys.disabled():
        print(f"\n{quantization}: prefill logit NMSE vs float32 goldens")
        for case, v in values.items():
            print(f"  {case:40s} {v:.3e}")
    assert max(values.values()) < BOUNDS[quantization]
    assert min(values.values()) > 0  # the quantised path really is quantised


def test_float_path_is_unchanged_by_quantisation_support(fixtures_dir):
    engine = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="none")
    assert engine.core.quantization == "float"
    assert max(_nmse(engine, fixtures_dir, c) for c in _cases(fixtures_dir)) < 1e-10


def test_packed_cache_round_trip(fixtures_dir, tmp_path):
    path = tmp_path / "packed.safetensors"
    t0 = time.time()
    cold = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="int4", packed_cache=str(path))
    cold_s = time.time() - t0
    assert path.is_file() and any("wrote the packed weight cache" in n for n in cold.core.notes)
    t0 = time.time()
    warm = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="int4", packed_cache=str(path))
    warm_s = time.time() - t0
    assert any("loaded packed weights" in n for n in warm.core.notes)
    case = _cases(fixtures_dir)[0]
    assert _nmse(cold, fixtures_dir, case) == _nmse(warm, fixtures_dir, case)
    name = "language_model.model.layers.1.mlp.down_proj"
    np.testing.assert_array_equal(cold.core.decoder_weight(name), warm.core.decoder_weight(name))
    print(f"\ntiny-a int4 load: cold {cold_s:.3f}s, warm (packed cache) {warm_s:.3f}s")
    # A cache from another plan or a stale one is ignored, not trusted.
    other = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="int8", packed_cache=str(path))
    assert not any("loaded packed weights" in n for n in other.core.notes)
    off = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="int4", packed_cache=False)
    assert off.core.packed_cache_file == ""


def test_packed_cache_found_by_any_path_to_the_model(fixtures_dir, tmp_path, monkeypatch):
    # The default cache (LOCATEANYTHING_CACHE) is keyed by the model folder: naming the same folder by
    # an absolute path, a relative path or a symlink must reuse the cache, not rewrite it.
    monkeypatch.setenv("LOCATEANYTHING_CACHE", str(tmp_path / "cache"))
    model = (fixtures_dir / "tiny-a").resolve()
    first = la.Engine(str(model), threads=1, quantization="int4")
    assert any("wrote the packed weight cache" in n for n in first.core.notes)
    link = tmp_path / "linked-model"
    link.symlink_to(model)
    monkeypatch.chdir(model.parent)
    for name in ("tiny-a", str(model), str(link)):
        again = la.Engine(name, threads=1, quantization="int4")
        assert any("loaded packed weights" in n for n in again.core.notes), (name, again.core.notes)
        assert again.core.packed_cache_file == first.core.packed_cache_file


def test_quantised_weights_take_their_format_size(fixtures_dir):
    f32 = la.Engine(str(fixtures_dir / "tiny-a"), threads=1, quantization="none")
    q4 = la.Engine(str(fixtures_dir / "tiny-a"), threads=1, quantization="int4", packed_cache=False)
    name = "language_model.model.layers.0.mlp.gate_proj"
    w = f32.core.decoder_weight(name)
    wq = q4.core.decoder_weight(name)
    # Dequantised Q4 values lie on the block grid: at most 16 distinct values per block of 32.
    blocks = wq.reshape(wq.shape[0], -1, 32)
    assert max(len(np.unique(b)) for row in blocks for b in row) <= 16
    assert np.abs(wq - w).max() <= np.abs(w).max() / 8 + 1e-6  # at most one step (max|w|/8)
    assert q4.core.weight_bytes < f32.core.weight_bytes


# The quantised plans also run the vision tower's linears as Q8_32 weights × INT8 activations. Each
# product then carries ~(2.8/127)²/12 ≈ 4e-5 relative error from the weights and as much from the
# activations (~8e-5); errors of the 4 products of each block add in the residual stream, and the
# final LayerNorm keeps them relative: 2 blocks × 4 × 8e-5 ≈ 6.4e-4 → 1e-3 (the projector adds
# nothing of its own: it stays float32).
VISION_Q8_BOUND = 1e-3


def _vision_nmse(engine, reference, image):
    pixels, grid = reference.preprocess(image)
    got, want = engine.vision_features(pixels, grid), reference.vision_features(pixels, grid)
    return float(((got - want) ** 2).sum() / (want ** 2).sum())


@pytest.mark.parametrize("quantization", ["int4", "int8"])
def test_quantised_vision_tower_against_float_goldens(fixtures_dir, quantization):
    from PIL import Image

    engine = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization=quantization, packed_cache=False)
    values = []
    for name in ("img0_640x360", "img1_333x517", "img2_1024x1024", "img3_28x28"):
        pixels, grid = engine.preprocess(Image.open(fixtures_dir / "images" / f"{name}.png"))
        gold = np.load(fixtures_dir / "tiny-a" / "vision" / f"{name}.npz")
        for got, want in ((engine.vision_features(pixels, grid), gold["vit_merged_pre_mlp1"]),
                          (engine.project(engine.vision_features(pixels, grid)), gold["mlp1_out"])):
            values.append(float(((got - want) ** 2).sum() / (want ** 2).sum()))
    assert 0 < min(values) and max(values) < VISION_Q8_BOUND, values
    f32 = la.Engine(str(fixtures_dir / "tiny-a"), threads=1, quantization="none")
    assert engine.core.memory_report()["vision"] < f32.core.memory_report()["vision"]


def test_quantised_vision_pads_an_intermediate_size_off_the_block(fixtures_dir, tmp_path):
    # MoonViT's intermediate size (4304) is not a multiple of 32: fc1's input is zero-padded to the
    # next block for Q8_32. A tower with intermediate 144 (= 4.5 blocks) must stay within the bound.
    from PIL import Image

    from locateanything_native.checkpoint import write_random_weights

    ck = tmp_path / "pad"
    ck.mkdir()
    for f in (fixtures_dir / "tiny-a").iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            (ck / f.name).write_bytes(f.read_bytes())
    for name in ("vocab.json", "merges.txt", "added_tokens.json"):
        (ck / name).write_bytes((fixtures_dir / "tokenizer" / name).read_bytes())
    cfg = json.loads((ck / "config.json").read_text())
    cfg["vision_config"]["intermediate_size"] = 144
    (ck / "config.json").write_text(json.dumps(cfg))
    write_random_weights(ck, cfg, seed=3, std=0.2)
    image = Image.open(fixtures_dir / "images" / "img1_333x517.png")
    q8 = la.Engine(str(ck), threads=2, quantization="int8", packed_cache=False)
    f32 = la.Engine(str(ck), threads=2, quantization="none")
    assert 0 < _vision_nmse(q8, f32, image) < VISION_Q8_BOUND


def test_visf_keeps_the_vision_tower_in_float32(fixtures_dir):
    from PIL import Image

    visf = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="int4-visf", packed_cache=False)
    f32 = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="none")
    pixels, grid = f32.preprocess(Image.open(fixtures_dir / "images" / "img0_640x360.png"))
    np.testing.assert_array_equal(visf.vision_features(pixels, grid), f32.vision_features(pixels, grid))
    assert visf.core.memory_report()["vision"] == f32.core.memory_report()["vision"]
    assert visf.core.memory_report()["decoder_linears"] < f32.core.memory_report()["decoder_linears"]
    default = la.Engine(str(fixtures_dir / "tiny-a"), threads=1, quantization="int4", packed_cache=False)
    assert default.core.quantization.endswith("-vis8") and not visf.core.quantization.endswith("-vis8")
