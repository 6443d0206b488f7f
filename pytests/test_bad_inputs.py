"""The bad-input battery: every wrong image, prompt, argument and checkpoint gives a named Python
exception (ValueError / FileNotFoundError / RuntimeError) whose message says what is wrong and how to
fix it; inputs the official processor would convert are converted the same way.

Image decisions (the official processor receives PIL images; a numpy array or PIL image in these forms
maps to a PIL mode it would convert):
  H×W×3 uint8 (C-contiguous or not, read-only, extreme values)  → used as is (PIL "RGB")
  H×W or H×W×1 uint8                                            → grey replicated (PIL "L" → RGB)
  H×W×2 uint8                                                   → alpha dropped (PIL "LA" → RGB)
  H×W×4 uint8                                                   → composited onto white (the processor's RGBA rule)
  1×1                                                           → upsampled to 28×28 like any small image
  float / int16 / bool dtype, 1-D or 4-D, 5 channels, 0×N       → ValueError (PIL has no such image)
  grid side ≥ 512 after the resize rule (e.g. 1×100000)         → ValueError (the processor raises too)
"""
import json
import shutil
import struct

import numpy as np
import pytest

import locateanything_native as la

PIL = pytest.importorskip("PIL.Image")
KW = dict(temperature=0, max_new_tokens=4, verbose=False)


@pytest.fixture(scope="module")
def worker(fixtures_dir):
    return la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), threads=2, print_stats=False)


@pytest.fixture(scope="module")
def rgb(fixtures_dir):
    return np.asarray(PIL.open(fixtures_dir / "images" / "img3_28x28.png").convert("RGB"))


def answer(worker, image, question="Point to: the circle."):
    return worker.predict(image, question, **KW)["answer"]


# ---- images ----
@pytest.mark.parametrize("dtype,hint", [(np.float32, "astype"), (np.float64, "astype"), (np.int16, "astype"),
                                        (bool, "astype")])
def test_wrong_dtypes_are_rejected_with_the_fix(worker, rgb, dtype, hint):
    with pytest.raises(ValueError, match="uint8") as e:
        answer(worker, rgb.astype(dtype))
    assert hint in str(e.value)


@pytest.mark.parametrize("shape", [(28,), (1, 28, 28, 3), (28, 28, 5), (28, 28, 0), (0, 28, 3), (28, 0, 3)])
def test_wrong_shapes_are_rejected(worker, shape):
    with pytest.raises(ValueError) as e:
        answer(worker, np.zeros(shape, np.uint8))
    assert "shape" in str(e.value) or "empty" in str(e.value) or "dimensions" in str(e.value)


def test_converted_forms_match_what_pil_would_give(worker, rgb):
    grey = rgb[..., 0].copy()
    as_l = np.asarray(PIL.fromarray(grey, "L").convert("RGB"))
    assert answer(worker, grey) == answer(worker, as_l)
    assert answer(worker, grey[..., None]) == answer(worker, as_l)
    la_img = np.stack([grey, np.full_like(grey, 77)], axis=-1)
    assert answer(worker, la_img) == answer(worker, as_l)  # LA: alpha dropped
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert answer(worker, rgba) == answer(worker, rgb)  # opaque alpha: unchanged


def test_views_read_only_and_extremes(worker, rgb):
    ref = answer(worker, rgb)
    big = np.zeros((56, 84, 3), np.uint8)
    big[::2, ::3] = rgb
    assert answer(worker, big[::2, ::3]) == ref  # non-contiguous
    ro = rgb.copy()
    ro.setflags(write=False)
    assert answer(worker, ro) == ref
    for v in (0, 255):
        assert isinstance(answer(worker, np.full((30, 40, 3), v, np.uint8)), str)


def test_tiny_and_elongated_images(worker):
    assert isinstance(answer(worker, np.zeros((1, 1, 3), np.uint8)), str)  # 1×1 → 28×28
    with pytest.raises(ValueError, match="elongated|512"):
        answer(worker, np.zeros((1, 100000, 3), np.uint8))
    with pytest.raises(ValueError, match="elongated|512"):
        answer(worker, np.zeros((20, 50000, 3), np.uint8))


def test_unsupported_image_objects(worker, tmp_path):
    with pytest.raises(ValueError, match="unsupported image type"):
        answer(worker, 42)
    with pytest.raises(FileNotFoundError):
        answer(worker, tmp_path / "missing.jpg")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError):
        answer(worker, bad)


# ---- prompts ----
def test_prompts(worker, rgb, fixtures_dir):
    assert isinstance(answer(worker, rgb, ""), str)  # an empty question is a valid (if useless) prompt
    assert isinstance(answer(worker, rgb, "<box><1><2></box> <|im_end|> typed in"), str)  # specials are tokens
    with pytest.raises(ValueError, match="IMG_CONTEXT"):
        answer(worker, rgb, "what is <IMG_CONTEXT> here")
    with pytest.raises(ValueError, match="image-2"):
        answer(worker, rgb, "compare with <image-2>")
    with pytest.raises(ValueError, match="model_max_length"):
        answer(worker, rgb, "word " * 20000)  # ~20k tokens, above the 16384 limit
    with pytest.raises((ValueError, TypeError)):
        answer(worker, rgb, b"bytes \xff\xfe are not text")
    with pytest.raises(ValueError):  # a str with a lone surrogate cannot be encoded as UTF-8
        answer(worker, rgb, "bad \udcff surrogate")


# ---- arguments ----
@pytest.mark.parametrize("kwargs,match", [
    (dict(generation_mode="turbo"), "generation_mode"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(max_new_tokens=10**9), "max_new_tokens"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
])
def test_bad_arguments(worker, rgb, kwargs, match):
    kw = {**KW, **kwargs}
    with pytest.raises(ValueError, match=match):
        worker.predict(rgb, "Point to: x.", **kw)


def test_bad_constructor_arguments(fixtures_dir):
    with pytest.raises(ValueError, match="quantization"):
        la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), quantization="int3")
    with pytest.raises(ValueError, match="threads"):
        la.Engine(str(fixtures_dir / "tiny-a"), threads=-2)
    with pytest.raises(ValueError, match="chat_template"):
        la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), chat_template="jinja")


# ---- checkpoints ----
def copy_checkpoint(fixtures_dir, dst):
    dst.mkdir()
    for f in (fixtures_dir / "tiny-a").iterdir():
        if f.is_file():
            shutil.copyfile(f, dst / f.name)
    for name in ("vocab.json", "merges.txt", "added_tokens.json"):  # resolve the fixture's pointer files
        shutil.copyfile(fixtures_dir / "tokenizer" / name, dst / name)
    return dst


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def rewrite_header(path, header):
    n, _ = header_of(path)
    data = open(path, "rb").read()[8 + n:]
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    open(path, "wb").write(struct.pack("<Q", len(blob)) + blob + data)


def load(path):
    return la.Engine(str(path), threads=1, quantization="none")


def test_missing_files(fixtures_dir, tmp_path):
    ck = copy_checkpoint(fixtures_dir, tmp_path / "a")
    (ck / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load(ck)
    ck = copy_checkpoint(fixtures_dir, tmp_path / "b")
    (ck / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load(ck)
    ck = copy_checkpoint(fixtures_dir, tmp_path / "c")
    (ck / "merges.txt").unlink()
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        load(ck)
    with pytest.raises(FileNotFoundError):
        la.Engine(str(tmp_path / "nowhere"))


def test_corrupt_weights(fixtures_dir, tmp_path):
    ck = copy_checkpoint(fixtures_dir, tmp_path / "trunc")
    data = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="truncated"):
        load(ck)

    ck = copy_checkpoint(fixtures_dir, tmp_path / "badjson")
    p = ck / "model.safetensors"
    raw = bytearray(p.read_bytes())
    raw[8:12] = b"}}}}"
    p.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="not valid JSON"):
        load(ck)

    ck = copy_checkpoint(fixtures_dir, tmp_path / "offsets")
    n, h = header_of(ck / "model.safetensors")
    name = "mlp1.1.weight"
    b, e = h[name]["data_offsets"]
    h[name]["data_offsets"] = [b + 10**9, e + 10**9]
    rewrite_header(ck / "model.safetensors", h)
    with pytest.raises(RuntimeError, match="mlp1.1.weight"):
        load(ck)


def test_wrong_tensors(fixtures_dir, tmp_path):
    ck = copy_checkpoint(fixtures_dir, tmp_path / "dtype")
    n, h = header_of(ck / "model.safetensors")
    h["mlp1.1.weight"]["dtype"] = "I16"
    rewrite_header(ck / "model.safetensors", h)
    with pytest.raises(RuntimeError, match="mlp1.1.weight.*I16|I16.*mlp1.1.weight"):
        load(ck)

    ck = copy_checkpoint(fixtures_dir, tmp_path / "shape")
    n, h = header_of(ck / "model.safetensors")
    h["mlp1.3.weight"]["shape"] = [32, 128]  # same bytes, wrong shape
    rewrite_header(ck / "model.safetensors", h)
    with pytest.raises(RuntimeError, match=r"mlp1.3.weight.*\[32, 128\]"):
        load(ck)

    ck = copy_checkpoint(fixtures_dir, tmp_path / "missing")
    n, h = header_of(ck / "model.safetensors")
    h["vision_model.encoder.blocks.1.mlp.fc0.weight.renamed"] = h.pop("vision_model.encoder.blocks.1.mlp.fc0.weight")
    rewrite_header(ck / "model.safetensors", h)
    with pytest.raises(RuntimeError, match="vision_model.encoder.blocks.1.mlp.fc0.weight"):
        load(ck)


def test_config_that_contradicts_the_weights(fixtures_dir, tmp_path):
    ck = copy_checkpoint(fixtures_dir, tmp_path / "cfg")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["text_config"]["intermediate_size"] = 256
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="config.json"):
        load(ck)
    cfg["text_config"]["intermediate_size"] = 128
    cfg["image_token_index"] = 151667  # the code default, which is </img> in the released tokenizer
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="IMG_CONTEXT"):
        load(ck)


def test_vocab_merges_mismatch(fixtures_dir, tmp_path):
    ck = copy_checkpoint(fixtures_dir, tmp_path / "tok")
    with open(ck / "merges.txt", "a") as f:
        f.write("zzzq qqqz\n")  # its merged token is not in vocab.json
    with pytest.raises(RuntimeError, match="merges.txt"):
        load(ck)
