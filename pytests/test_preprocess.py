"""Image preprocessing and JPEG decoding through the binding, checked against the official
processor's fixtures and against Pillow itself (byte-exact)."""
import hashlib
import io
import json
import threading
import time

import numpy as np
import PIL
import pytest
from PIL import Image

from locateanything_native import _core

IMAGE_NAMES = [
    "img0_640x360",
    "img1_333x517",
    "img2_1024x1024",
    "img3_28x28",
    "img4_2600x2000_processor_only",
]


# The order of Pillow's two 1-D passes changed in Pillow 13; follow the Pillow installed here.
PASS_ORDER = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "pillow12"


def pil_resize(arr, w, h):
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BICUBIC))


def official_resize(arr, plan):
    """The processor's two resizes, done with Pillow (the reference) from a plan."""
    im = Image.fromarray(arr)
    if (plan["w1"], plan["h1"]) != im.size:
        im = im.resize((plan["w1"], plan["h1"]), Image.BICUBIC)
    if (plan["w2"], plan["h2"]) != im.size:
        im = im.resize((plan["w2"], plan["h2"]), Image.BICUBIC)
    return np.asarray(im)


def reference_pixel_values(resized):
    """The official op order: float32 /255, then (v - 0.5) / 0.5, patchified [N, 3, 14, 14]."""
    x = resized.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    h, w, _ = x.shape
    gh, gw = h // 14, w // 14
    return x.reshape(gh, 14, gw, 14, 3).transpose(0, 2, 4, 1, 3).reshape(gh * gw, 3, 14, 14)


def composite_on_white(rgba):
    """The processor's RGBA rule, done with Pillow."""
    im = Image.fromarray(rgba, "RGBA")
    white = Image.new("RGB", im.size, (255, 255, 255))
    white.paste(im, mask=im.split()[3])
    return np.asarray(white)


# ------------------------------------------------------------------------------- official fixtures


@pytest.fixture(scope="module")
def images_json(fixtures_dir):
    return json.loads((fixtures_dir / "images" / "images.json").read_text())


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_fixture_image_matches_official_processor(fixtures_dir, images_json, name):
    base = fixtures_dir / "images" / name
    meta = images_json[name]
    img = np.asarray(Image.open(f"{base}.png").convert("RGB"))
    pixel_values, grid = _core.preprocess(img)

    assert grid == tuple(meta["grid_hw"])
    assert pixel_values.dtype == np.float32
    assert pixel_values.shape == (meta["num_patches"], 3, 14, 14)
    digest = hashlib.sha256(np.ascontiguousarray(pixel_values, dtype="<f4").tobytes()).hexdigest()
    assert digest == meta["pixel_values_sha256_f32"]

    npz = np.load(f"{base}__processor.npz")
    assert tuple(npz["image_grid_hws"].reshape(-1)) == grid
    n8 = npz["pixel_values_first8"].shape[0]
    assert np.array_equal(pixel_values[:n8], npz["pixel_values_first8"])
    assert np.array_equal(pixel_values[-n8:], npz["pixel_values_last8"])
    if "pixel_values" in npz:
        assert np.array_equal(pixel_values, npz["pixel_values"])

    # The resized image, through the binding's plan + resize, equals the official one.
    h, w = img.shape[:2]
    plan = _core.plan_resize(w, h)
    assert (plan["w2"], plan["h2"]) == tuple(meta["resized_size_wh"])
    resized = img
    if (plan["w1"], plan["h1"]) != (w, h):
        resized = _core.resize_bicubic(resized, plan["w1"], plan["h1"])
    if (plan["w2"], plan["h2"]) != resized.shape[1::-1]:
        resized = _core.resize_bicubic(resized, plan["w2"], plan["h2"])
    expected = np.asarray(Image.open(f"{base}__resized.png").convert("RGB"))
    assert np.array_equal(resized, expected)
    assert np.array_equal(pixel_values, reference_pixel_values(expected))


SPEC_TABLE = [
    # (W, H, W1, H1, W2, H2, gh, gw): spec-vision-and-io §1.7
    (640, 360, 640, 360, 644, 364, 26, 46),
    (1024, 1024, 1024, 1024, 1036, 1036, 74, 74),
    (4000, 3000, 2591, 1943, 2604, 1960, 140, 186),
    (448, 448, 448, 448, 448, 448, 32, 32),
    (1920, 1080, 1920, 1080, 1932, 1092, 78, 138),
    (3840, 2160, 2990, 1682, 2996, 1708, 122, 214),
    (2240, 2240, 2240, 2240, 2240, 2240, 160, 160),
    (2241, 2241, 2241, 2241, 2268, 2268, 162, 162),
    (10, 10, 10, 10, 28, 28, 2, 2),
]


@pytest.mark.parametrize("row", SPEC_TABLE)
def test_plan_resize_worked_examples(row):
    w, h, w1, h1, w2, h2, gh, gw = row
    assert _core.plan_resize(w, h) == {"w1": w1, "h1": h1, "w2": w2, "h2": h2, "grid_h": gh, "grid_w": gw}


def test_plan_resize_too_elongated():
    with pytest.raises(ValueError, match="too elongated.*716"):
        _core.plan_resize(10000, 200)
    with pytest.raises(ValueError, match="empty"):
        _core.plan_resize(0, 10)


def test_normalisation_spot_values():
    # spec §1.5: float32 after to_tensor + normalize.
    spots = {0: -1.0, 1: -0.9921568632125854, 64: -0.498039186000824, 127: -0.003921568393707275,
             128: 0.003921627998352051, 200: 0.5686274766921997, 255: 1.0}
    img = np.zeros((28, 28, 3), np.uint8)
    keys = list(spots)
    for i, p in enumerate(keys):
        img[0, i] = p
    pv, grid = _core.preprocess(img)
    assert grid == (2, 2)
    for i, p in enumerate(keys):
        assert pv[0, :, 0, i].tolist() == [np.float32(spots[p])] * 3, p
    # All 256 values against the reference op order, and all distinct.
    img = np.stack([(np.arange(784).reshape(28, 28) + 85 * c) % 256 for c in range(3)], -1).astype(np.uint8)
    pv, _ = _core.preprocess(img)
    assert np.array_equal(pv, reference_pixel_values(img))
    assert len(np.unique(pv)) == 256


# ------------------------------------------------------------------------ resize vs Pillow, random


def make_content(rng, kind, h, w):
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((h, w, 3), rng.integers(0, 256, 3, dtype=np.uint8), np.uint8)
    if kind == "checker":  # maximal overshoot: exercises the clamps
        yy, xx = np.mgrid[:h, :w]
        return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, -1)
    if kind == "gradient":
        yy, xx = np.mgrid[:h, :w]
        base = (xx * 255 // max(w - 1, 1) + yy * 128 // max(h - 1, 1)) % 256
        return np.stack([base, 255 - base, (base * 7) % 256], -1).astype(np.uint8)
    # blocks: flat regions with hard edges, like UI screenshots
    small = rng.integers(0, 256, (h // 7 + 1, w // 7 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 7, 0), 7, 1)[:h, :w])


def random_cases():
    rng = np.random.default_rng(20240611)
    kinds = ["noise", "flat", "checker", "gradient", "blocks"]
    cases = [((360, 640), (364, 644)), ((3000, 4000), (1943, 2591)), ((360, 640), (360, 1000)),
             ((517, 333), (532, 336)), ((1, 1), (28, 28)), ((1, 5), (3, 1)), ((2, 2), (1, 1))]
    for _ in range(120):  # small, any direction
        cases.append((tuple(rng.integers(1, 200, 2)), tuple(rng.integers(1, 260, 2))))
    for _ in range(40):  # one axis changes
        h, w = rng.integers(1, 400, 2)
        if rng.integers(2):
            cases.append(((h, w), (h, int(rng.integers(1, 500)))))
        else:
            cases.append(((h, w), (int(rng.integers(1, 500)), w)))
    for _ in range(25):  # medium, near the snap sizes the processor uses
        h, w = rng.integers(200, 1500, 2)
        dh, dw = rng.integers(-40, 28, 2)
        cases.append(((h, w), (max(1, h + dh), max(1, w + dw))))
    for _ in range(8):  # large, down and up
        h, w = rng.integers(1500, 3000, 2)
        f = float(rng.uniform(0.3, 1.2))
        cases.append(((h, w), (max(1, int(h * f)), max(1, int(w * f)))))
    return [(i, src, dst, kinds[i % len(kinds)]) for i, (src, dst) in enumerate(cases)]


RANDOM_CASES = random_cases()
assert len(RANDOM_CASES) >= 200


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"{c[0]}-{c[1][1]}x{c[1][0]}-to-{c[2][1]}x{c[2][0]}-{c[3]}")
def test_resize_matches_pillow(case):
    index, (h, w), (oh, ow), kind = case
    rng = np.random.default_rng(index)
    img = make_content(rng, kind, int(h), int(w))
    ours = _core.resize_bicubic(img, int(ow), int(oh), pass_order=PASS_ORDER)
    assert ours.shape == (oh, ow, 3)
    assert np.array_equal(ours, pil_resize(img, int(ow), int(oh)))


# (1200, 6000) is downscaled with the height losing far more pixels than the width: Pillow 13 runs
# the vertical pass first there.
@pytest.mark.parametrize("size", [(1, 1), (3, 2), (13, 100), (640, 360), (27, 29), (60, 4000), (1200, 6000),
                                  (6000, 1200)])
def test_preprocess_matches_pillow_pipeline(size):
    w, h = size
    img = np.random.default_rng(w * 7 + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pv, grid = _core.preprocess(img, pass_order=PASS_ORDER)
    plan = _core.plan_resize(w, h)
    expected = official_resize(img, plan)
    assert grid == (plan["grid_h"], plan["grid_w"]) == (expected.shape[0] // 14, expected.shape[1] // 14)
    assert np.array_equal(pv, reference_pixel_values(expected))


def test_large_image_is_fast_and_exact():
    rng = np.random.default_rng(5)
    img = np.repeat(np.repeat(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), 10, 0), 10, 1)
    t0 = time.perf_counter()
    pv, grid = _core.preprocess(img)
    elapsed = time.perf_counter() - t0
    assert grid == (140, 186)
    assert elapsed < 1.5, f"4000x3000 preprocess took {elapsed:.2f}s"
    plan = _core.plan_resize(4000, 3000)
    expected = official_resize(img, plan)
    assert np.array_equal(pv[:500], reference_pixel_values(expected[:14 * 3])[:500])
    assert np.array_equal(pv[-186:], reference_pixel_values(expected[-14:]))


# --------------------------------------------------------------------------- conversions, strides


def test_rgba_composites_on_white_like_the_processor():
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    expected = composite_on_white(rgba)
    assert np.array_equal(_core.to_rgb(rgba), expected)
    pv, _ = _core.preprocess(rgba)
    pv_rgb, _ = _core.preprocess(expected)
    assert np.array_equal(pv, pv_rgb)
    # Every (colour, alpha) pair.
    c, a = np.meshgrid(np.arange(256), np.arange(256))
    full = np.stack([c, c, c, a], -1).astype(np.uint8)
    assert np.array_equal(_core.to_rgb(full), composite_on_white(full))


def test_grey_and_grey_alpha_like_pil_convert():
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (31, 17), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(grey, "L").convert("RGB"))
    assert np.array_equal(_core.to_rgb(grey), expected)
    assert np.array_equal(_core.to_rgb(grey[..., None]), expected)
    la = rng.integers(0, 256, (31, 17, 2), dtype=np.uint8)
    la_expected = np.asarray(Image.fromarray(la, "LA").convert("RGB"))
    assert np.array_equal(_core.to_rgb(la), la_expected)
    assert np.array_equal(_core.preprocess(la)[0], _core.preprocess(la_expected)[0])


def strided_variants(img):
    ro = img.copy()
    ro.setflags(write=False)
    return {
        "flipped_rows": img[::-1],
        "flipped_cols": img[:, ::-1],
        "bgr_view": img[:, :, ::-1],
        "every_other": img[::2, ::3],
        "fortran": np.asfortranarray(img),
        "transposed": img.transpose(1, 0, 2),
        "read_only": ro,
        "channel_slice_of_rgba": np.concatenate([img, img[..., :1]], -1)[..., :3],
        "broadcast": np.broadcast_to(img[:1], img.shape),
    }


@pytest.mark.parametrize("variant", list(strided_variants(np.zeros((4, 4, 3), np.uint8))))
def test_any_strides_give_the_contiguous_result(variant):
    img = np.random.default_rng(3).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    view = strided_variants(img)[variant]
    dense = np.ascontiguousarray(view)
    assert np.array_equal(_core.to_rgb(view), dense)
    pv, grid = _core.preprocess(view)
    pv2, grid2 = _core.preprocess(dense)
    assert grid == grid2 and np.array_equal(pv, pv2)
    assert np.array_equal(_core.resize_bicubic(view, 30, 70), pil_resize(dense, 30, 70))


def test_outputs_are_owned_arrays():
    img = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pv, _ = _core.preprocess(img)
    assert pv.flags.c_contiguous and pv.flags.writeable
    out = _core.to_rgb(img)
    assert out.flags.c_contiguous and not np.shares_memory(out, img)


def test_gil_is_released():
    img = np.random.default_rng(6).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    count = 0
    done = threading.Event()

    def spin():
        nonlocal count
        while not done.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.01)
        before = count
        _core.preprocess(img)
        during = count - before
    finally:
        done.set()
        t.join()
    # With the GIL held the spinner would be frozen for the whole call.
    assert during > 1000, during


# ---------------------------------------------------------------------------------------- JPEG


def jpeg_bytes(im, **kw):
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def photo_like(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([xx * 200 // w, yy * 200 // h, (xx + yy) * 100 // (w + h)], -1)
    return np.clip(base + rng.integers(0, 50, (h, w, 3)), 0, 255).astype(np.uint8)


JPEG_CASES = [(q, s, size, prog) for q in (30, 75, 95, 100) for s in (0, 1, 2)
              for size, prog in (((61, 97), False), ((33, 17), True))]


@pytest.mark.parametrize("case", JPEG_CASES, ids=lambda c: f"q{c[0]}-s{c[1]}-{c[2][1]}x{c[2][0]}{'-prog' if c[3] else ''}")
def test_jpeg_decode_matches_pillow(case):
    q, sub, (h, w), progressive = case
    data = jpeg_bytes(Image.fromarray(photo_like(h, w, q + sub)), quality=q, subsampling=sub,
                      progressive=progressive, optimize=progressive)
    ours = _core.decode_jpeg(data)
    assert ours.shape == (h, w, 3) and ours.dtype == np.uint8
    assert np.array_equal(ours, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_jpeg_grey_and_cmyk_match_pillow(tmp_path):
    grey = Image.fromarray(photo_like(40, 52, 1)[..., 0], "L")
    data = jpeg_bytes(grey, quality=85)
    assert np.array_equal(_core.decode_jpeg(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    cmyk = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 40, 4), dtype=np.uint8), "CMYK")
    data = jpeg_bytes(cmyk, quality=90)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "CMYK"
    assert np.array_equal(_core.decode_jpeg(data), np.asarray(decoded.convert("RGB")))


def test_jpeg_sources_path_pathlike_and_buffers(tmp_path):
    data = jpeg_bytes(Image.fromarray(photo_like(30, 20, 3)), quality=90)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    expected = np.asarray(Image.open(path).convert("RGB"))
    for src in (str(path), path, data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert np.array_equal(_core.decode_jpeg(src), expected), type(src)
    # Decoding then preprocessing equals the reference on the Pillow-decoded image.
    assert np.array_equal(_core.preprocess(_core.decode_jpeg(path))[0], _core.preprocess(expected)[0])


def test_jpeg_recoverable_damage_is_accepted_like_pillow():
    data = jpeg_bytes(Image.fromarray(photo_like(40, 56, 5)), quality=90)
    # libjpeg only warns about stray bytes before a marker or after the end; Pillow decodes these.
    for damaged in (data[:-2] + b"\x00\x01\x02" + data[-2:], data + b"trailing junk"):
        expected = np.asarray(Image.open(io.BytesIO(damaged)).convert("RGB"))
        assert np.array_equal(_core.decode_jpeg(damaged), expected)


def test_jpeg_bad_inputs(tmp_path):
    data = jpeg_bytes(Image.fromarray(photo_like(64, 64, 4)), quality=90)
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        _core.decode_jpeg(missing)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.jpg.*truncated"):
        _core.decode_jpeg(str(truncated))
    with pytest.raises(OSError):  # Pillow refuses it too
        Image.open(truncated).load()
    header_only = tmp_path / "header.jpg"
    header_only.write_bytes(data[:30])
    with pytest.raises(ValueError, match="header.jpg"):
        _core.decode_jpeg(header_only)
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    with pytest.raises(ValueError, match="not a JPEG"):
        _core.decode_jpeg(png.getvalue())
    with pytest.raises(ValueError, match="empty"):
        _core.decode_jpeg(b"")
    with pytest.raises(TypeError, match="path"):
        _core.decode_jpeg(12)


# ----------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint16, np.int8, bool])
def test_non_uint8_dtypes_are_refused_with_a_fix(dtype):
    img = np.zeros((8, 8, 3), dtype)
    for fn in (_core.preprocess, _core.to_rgb):
        with pytest.raises(ValueError, match=rf"dtype is {np.dtype(dtype).name}.*astype\(np\.uint8\)"):
            fn(img)
    with pytest.raises(ValueError, match="uint8"):
        _core.resize_bicubic(img, 4, 4)


@pytest.mark.parametrize("shape", [(5,), (2, 2, 2, 3), (4, 4, 5), (4, 4, 0)])
def test_bad_shapes_are_named(shape):
    with pytest.raises(ValueError, match=r"shape \(" + ", ".join(str(s) for s in shape)):
        _core.preprocess(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 0)])
def test_empty_images_are_refused(shape):
    with pytest.raises(ValueError, match="empty"):
        _core.preprocess(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="empty"):
        _core.to_rgb(np.zeros(shape, np.uint8))


def test_pass_orders_differ_only_where_pillow_changed():
    img = np.random.default_rng(8).integers(0, 256, (300, 100, 3), dtype=np.uint8)
    tall_13 = _core.resize_bicubic(img, 90, 150, pass_order="pillow13")
    tall_12 = _core.resize_bicubic(img, 90, 150, pass_order="pillow12")
    assert not np.array_equal(tall_13, tall_12)  # Pillow 13 goes vertical first here, 12 does not
    wide = img.transpose(1, 0, 2)
    assert np.array_equal(_core.resize_bicubic(wide, 150, 90, pass_order="pillow13"),
                          _core.resize_bicubic(wide, 150, 90, pass_order="pillow12"))
    with pytest.raises(ValueError, match="pass_order"):
        _core.resize_bicubic(img, 10, 10, pass_order="pillow11")


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="np.asarray"):
        _core.preprocess([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        _core.resize_bicubic(np.zeros((4, 4, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="at least 1x1"):
        _core.resize_bicubic(np.zeros((4, 4, 3), np.uint8), 0, 2)
    with pytest.raises(ValueError, match="in_token_limit"):
        _core.preprocess(np.zeros((4, 4, 3), np.uint8), in_token_limit=0)
    # Very elongated: the grid would pass the 512 limit of the vision tower (no pixel work is done).
    strip = np.broadcast_to(np.uint8(7), (20, 50000, 3))
    with pytest.raises(ValueError, match="too elongated"):
        _core.preprocess(strip)
    with pytest.raises(ValueError, match="too elongated"):
        _core.preprocess(strip.transpose(1, 0, 2))
    # 1x1 upsamples to 28x28 like Pillow.
    pv, grid = _core.preprocess(np.full((1, 1, 3), 200, np.uint8))
    assert grid == (2, 2) and np.all(pv == np.float32(0.5686274766921997))
