"""The drop-in worker's surface: the official constructor and methods with their arguments and
defaults, return dicts, image inputs, sampling reproducibility, errors, and the GIL release."""
import inspect
import io
import threading
import time

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native import LocateAnythingWorker

PIL = pytest.importorskip("PIL.Image")

# (name, default) of every official parameter, from locateanything_worker.py.
OFFICIAL = {
    "__init__": [("model_path", None), ("device", "cuda"), ("dtype", "torch.bfloat16"), ("use_batch_runtime", False),
                 ("attn", "la_flash"), ("vision_attn", "auto"), ("scheduler", "pipeline"), ("group_size", 0),
                 ("strict_attn", False)],
    "predict": [("image", None), ("question", None), ("generation_mode", "hybrid"), ("max_new_tokens", 2048),
                ("temperature", 0.7), ("top_p", 0.9), ("top_k", 0), ("repetition_penalty", 1.1), ("verbose", True),
                ("visual_prompt", None), ("visual_prompt_box", None), ("visual_prompt_box_format", "normalized_1000"),
                ("replace_text", None)],
    "predict_batch": [("requests", None), ("generation_mode", "hybrid"), ("max_new_tokens", 2048),
                      ("temperature", 0.7), ("top_p", 0.9), ("top_k", 0), ("repetition_penalty", 1.1),
                      ("scheduler", None), ("group_size", None), ("verbose", True)],
    "detect": [("image", None), ("categories", None)],
    "detect_visual_prompt": [("image", None), ("visual_prompt", None), ("visual_prompt_box", None),
                             ("visual_prompt_box_format", "normalized_1000")],
    "detect_batch": [("requests", None)],
    "ground_single": [("image", None), ("phrase", None)],
    "ground_multi": [("image", None), ("phrase", None)],
    "ground_text": [("image", None), ("phrase", None)],
    "detect_text": [("image", None)],
    "ground_gui": [("image", None), ("phrase", None), ("output_type", "box")],
    "point": [("image", None), ("phrase", None)],
    "parse_boxes": [("answer", None), ("image_width", None), ("image_height", None)],
    "parse_points": [("answer", None), ("image_width", None), ("image_height", None)],
}
# Where we deliberately differ: a CPU engine defaults to the CPU, and has no torch dtype.
DELIBERATE = {("__init__", "device"): "cpu", ("__init__", "dtype"): None}


@pytest.mark.parametrize("method", sorted(OFFICIAL))
def test_signatures_match_the_official_worker(method):
    sig = inspect.signature(getattr(LocateAnythingWorker, method))
    params = [p for p in sig.parameters.values() if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD,)]
    names = [p.name for p in params]
    assert names[: len(OFFICIAL[method])] == [n for n, _ in OFFICIAL[method]], method
    for p, (name, default) in zip(params, OFFICIAL[method]):
        expected = DELIBERATE.get((method, name), default)
        if expected is None and p.default is inspect.Parameter.empty:
            continue
        assert p.default == expected, (method, name)
    if method not in ("parse_boxes", "parse_points", "predict", "predict_batch", "__init__", "detect_batch"):
        assert any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()), method


@pytest.fixture(scope="module")
def worker(fixtures_dir):
    return LocateAnythingWorker(str(fixtures_dir / "tiny-a"), threads=2, print_stats=False)


@pytest.fixture(scope="module")
def image(fixtures_dir):
    return PIL.open(fixtures_dir / "images" / "img3_28x28.png").convert("RGB")


def test_non_cpu_device_is_a_clear_error(fixtures_dir):
    with pytest.raises(ValueError, match="CPU"):
        LocateAnythingWorker(str(fixtures_dir / "tiny-a"), device="cuda")
    LocateAnythingWorker(str(fixtures_dir / "tiny-a"), device="cpu", print_stats=False)


def test_return_dicts(worker, image):
    out = worker.detect(image, ["square"], temperature=0, max_new_tokens=8, verbose=False)
    assert set(out) == {"answer"}
    out = worker.detect(image, ["square"], temperature=0, max_new_tokens=8)
    assert set(out) == {"answer", "history", "stats"}
    assert isinstance(out["stats"], str) and out["stats"].startswith("\nStatistic Info, num_tokens=")
    assert isinstance(out["stats"], la.Stats)
    for key in ("preprocess", "vision", "projector", "prefill", "decode", "tokens_per_second"):
        assert key in out["stats"].timings
    assert all(isinstance(h, tuple) and h[0] in ("ar", "mtp") for h in out["history"])


def test_stats_are_printed_like_the_reference(fixtures_dir, image, capsys):
    w = LocateAnythingWorker(str(fixtures_dir / "tiny-a"), threads=1)
    w.point(image, "x", temperature=0, max_new_tokens=4)
    assert "Statistic Info, num_tokens=" in capsys.readouterr().out


def test_image_inputs_agree(worker, fixtures_dir, tmp_path):
    path = fixtures_dir / "images" / "img1_333x517.png"
    pil = PIL.open(path)
    kw = dict(temperature=0, max_new_tokens=16, verbose=False)
    ref = worker.point(pil, "the circle", **kw)["answer"]
    assert worker.point(np.asarray(pil.convert("RGB")), "the circle", **kw)["answer"] == ref
    assert worker.point(str(path), "the circle", **kw)["answer"] == ref
    assert worker.point(path, "the circle", **kw)["answer"] == ref
    # Non-contiguous views are accepted without a copy on the Python side.
    arr = np.asarray(pil.convert("RGB"))
    padded = np.zeros((arr.shape[0], arr.shape[1], 4), np.uint8)
    padded[..., :3] = arr
    assert worker.point(padded[..., :3], "the circle", **kw)["answer"] == ref


def test_rgba_is_composited_on_white_like_the_processor(worker):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    pil = PIL.fromarray(rgba, "RGBA")
    white = PIL.new("RGB", pil.size, (255, 255, 255))
    white.paste(pil, mask=pil.split()[3])
    kw = dict(temperature=0, max_new_tokens=8, verbose=False)
    assert worker.point(pil, "x", **kw)["answer"] == worker.point(white, "x", **kw)["answer"]
    assert worker.point(rgba, "x", **kw)["answer"] == worker.point(white, "x", **kw)["answer"]


def test_sampling_is_reproducible_per_seed(worker, image):
    a = worker.detect(image, ["square"], max_new_tokens=12, verbose=False, seed=7)["answer"]
    b = worker.detect(image, ["square"], max_new_tokens=12, verbose=False, seed=7)["answer"]
    assert a == b
    answers = {worker.detect(image, ["square"], max_new_tokens=12, verbose=False, seed=s, temperature=5.0)["answer"]
               for s in range(6)}
    assert len(answers) > 1  # a hot temperature with different seeds does explore


def test_predict_batch_request_forms(worker, image):
    kw = dict(temperature=0, max_new_tokens=8, verbose=False)
    q = la._core.task_prompt("point", "x")
    single = worker.predict(image, q, **kw)["answer"]
    out = worker.predict_batch([(image, q), {"image": image, "question": q}, {"image": image, "prompt": q}], **kw)
    assert [o["answer"] for o in out] == [single] * 3
    with pytest.raises(ValueError, match="question"):
        worker.predict_batch([{"image": image}], **kw)
    with pytest.raises(ValueError, match="tuple"):
        worker.predict_batch([(image,)], **kw)
    det = worker.detect_batch([(image, ["a", "b"]), (image, "a</c>b")], **kw)
    assert det[0]["answer"] == det[1]["answer"] == worker.detect(image, ["a", "b"], **kw)["answer"]


def test_visual_prompt_paths(worker, image):
    kw = dict(temperature=0, max_new_tokens=8, verbose=False)
    a = worker.detect_visual_prompt(image, visual_prompt_box=[0, 0, 500, 500], **kw)
    b = worker.detect_visual_prompt(image, visual_prompt=image.crop((0, 0, 14, 14)), **kw)
    assert a["answer"] == b["answer"]
    with pytest.raises(ValueError):
        worker.detect_visual_prompt(image, **kw)
    with pytest.raises(ValueError, match="replace_text"):
        worker.predict(image, "find it", visual_prompt=image, replace_text="missing", **kw)


def test_parse_helpers_are_the_official_ones():
    ans = "<ref>a</ref><box><100><200><300><400></box><box><5><6></box><box>none</box><|im_end|>"
    assert LocateAnythingWorker.parse_boxes(ans, 640, 360) == [
        {"x1": 100 / 1000 * 640, "y1": 200 / 1000 * 360, "x2": 300 / 1000 * 640, "y2": 400 / 1000 * 360}]
    assert LocateAnythingWorker.parse_points(ans, 640, 360) == [{"x": 5 / 1000 * 640, "y": 6 / 1000 * 360}]


def test_long_calls_release_the_gil(worker, fixtures_dir):
    image = PIL.open(fixtures_dir / "images" / "img2_1024x1024.png")
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    worker.point(image, "x", temperature=0, max_new_tokens=4, verbose=False)
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    during = [x for x in ticks if start <= x <= start + elapsed]
    # With the GIL held for the whole call the ticker could not run at all.
    assert len(during) >= 3, (len(during), elapsed)


def test_loop_guard_is_opt_in_and_reported(fixtures_dir):
    meta = __import__("json").loads((fixtures_dir / "tiny-a" / "cases" / "img0_640x360__point.json").read_text())
    gold = meta["runs"]["greedy"]["hybrid"]["answer"]  # ten identical boxes until the token cap
    image = PIL.open(fixtures_dir / "images" / "img0_640x360.png")
    guarded = LocateAnythingWorker(str(fixtures_dir / "tiny-a"), print_stats=False, loop_guard=True,
                                   quantization="none")
    out = guarded.point(image, "the circle", generation_mode="hybrid", max_new_tokens=64, temperature=0, top_p=1.0,
                        repetition_penalty=1.0)
    assert "loop_guard=stopped" in out["stats"]
    assert out["stats"].timings["loop_guard_fired"]
    assert gold.startswith(out["answer"]) and len(out["answer"]) < len(gold)
    assert out["answer"].count("<box>") == 9  # 8 repeats of the first box are tolerated
