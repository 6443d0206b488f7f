"""Batching and reuse: every row of a batch gives the tokens it gives alone (greedy, G0 and G1), over
tiers like the reference's batch gate; images are encoded once; prompt prefixes are shared."""
import json

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native import _core

PIL = pytest.importorskip("PIL.Image")

G0 = dict(temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0)
G1 = dict(temperature=0.0, top_p=0.9, top_k=0, repetition_penalty=1.1)
TASKS = {
    "detect": _core.task_prompt("detect", "square</c>circle"),
    "ground_single": _core.task_prompt("ground_single", "a red square"),
    "point": _core.task_prompt("point", "the circle"),
    "detect_text": _core.task_prompt("detect_text", ""),
}


@pytest.fixture(scope="module", params=["none", "int4"])
def engine(fixtures_dir, request):
    """Both the exact float path and the INT4 path must be batch-invariant."""
    return la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization=request.param)


@pytest.fixture(scope="module")
def images(fixtures_dir):
    return {name: np.asarray(PIL.open(fixtures_dir / "images" / f"{name}.png").convert("RGB"))
            for name in ("img0_640x360", "img1_333x517", "img2_1024x1024", "img3_28x28")}


def alone(engine, req):
    opts = {k: v for k, v in req.items() if k not in ("image", "question")}
    return engine.run(req["image"], req["question"], **opts)


def check_batch(engine, reqs):
    batch = engine.run_batch(reqs)
    assert len(batch) == len(reqs)
    for i, (req, got) in enumerate(zip(reqs, batch)):
        ref = alone(engine, req)
        assert got.generated_ids == ref.generated_ids, i
        assert got.answer == ref.answer, i
        assert got.stop_reason == ref.stop_reason, i
        assert got.forward_calls == ref.forward_calls, i
        assert got.boxes == ref.boxes and got.points == ref.points, i
    return batch


def req(image, task, mode="hybrid", cfg=G0, max_new_tokens=64):
    return dict(image=image, question=TASKS[task], generation_mode=mode, max_new_tokens=max_new_tokens, **cfg)


def test_tier1_one_row(engine, images):
    check_batch(engine, [req(images["img1_333x517"], "detect")])


def test_tier2_identical_rows(engine, images):
    out = check_batch(engine, [req(images["img0_640x360"], "point", "fast")] * 3)
    assert out[0].timings["images_encoded"] == 1
    assert out[1].timings["images_encoded"] == 0 and out[2].timings["images_encoded"] == 0
    assert all(r.timings["shared_prefix_tokens"] > 300 for r in out)


@pytest.mark.parametrize("cfg", [G0, G1], ids=["G0", "G1"])
def test_tier3_one_image_several_prompts_both_orders(engine, images, cfg):
    rows = [req(images["img1_333x517"], t, m, cfg) for t, m in
            [("detect", "hybrid"), ("ground_single", "slow"), ("point", "fast"), ("detect_text", "hybrid")]]
    forward = check_batch(engine, rows)
    backward = check_batch(engine, rows[::-1])
    assert [r.generated_ids for r in forward] == [r.generated_ids for r in backward[::-1]]
    assert sum(r.timings["images_encoded"] for r in forward) == 1
    assert all(r.timings["shared_prefix_tokens"] > 0 for r in forward)


def test_tier4_different_images_and_prompt_lengths(engine, images):
    rows = [req(images[n], t) for n, t in
            [("img0_640x360", "detect"), ("img1_333x517", "point"), ("img2_1024x1024", "ground_single"),
             ("img3_28x28", "detect_text")]]
    out = check_batch(engine, rows)
    assert len({len(r.prompt_ids) for r in out}) == 4


def test_tier5_ragged_modes_and_stop_points(engine, images):
    rows = []
    for i, (n, t) in enumerate([("img0_640x360", "detect"), ("img0_640x360", "point"), ("img3_28x28", "detect"),
                                ("img3_28x28", "ground_single"), ("img1_333x517", "detect_text"),
                                ("img2_1024x1024", "point")]):
        rows.append(req(images[n], t, ("slow", "fast", "hybrid")[i % 3], (G0, G1)[i % 2], (5, 64, 17, 40, 2, 64)[i]))
    out = check_batch(engine, rows)
    assert len({r.stop_reason for r in out}) >= 2


def test_batch_rows_match_the_goldens(images, fixtures_dir):
    """All 60 fixture runs in one batch, each equal to the official tokens (exact float path)."""
    engine = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, quantization="none")
    rows, golds = [], []
    for path in sorted((fixtures_dir / "tiny-a" / "cases").glob("*.json")):
        meta = json.loads(path.read_text())
        for cfg, runs in meta["runs"].items():
            kw = runs["generate_kwargs"]
            for mode in ("slow", "fast", "hybrid"):
                rows.append(dict(image=images[meta["image"]], question=meta["question"], generation_mode=mode,
                                 max_new_tokens=64, **kw))
                golds.append(runs[mode]["generated_ids"])
    out = engine.run_batch(rows)
    assert [r.generated_ids for r in out] == golds


def test_vision_cache_across_calls(fixtures_dir, images):
    eng = la.Engine(str(fixtures_dir / "tiny-a"), threads=2, vision_cache_mb=64)
    r1 = eng.run(images["img1_333x517"], TASKS["point"], max_new_tokens=4)
    r2 = eng.run(images["img1_333x517"].copy(), TASKS["detect"], max_new_tokens=4)  # same content, new object
    assert r1.timings["images_encoded"] == 1 and r2.timings["images_encoded"] == 0
    assert eng.core.vision_cache_entries == 1
    eng.set_vision_cache(0.0001)  # smaller than one encoding: everything is evicted
    assert eng.core.vision_cache_entries == 0


def test_worker_predict_batch_equals_serial(fixtures_dir, images):
    w = la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), threads=2, print_stats=False)
    img = PIL.fromarray(images["img1_333x517"])
    reqs = [(img, TASKS["point"]), {"image": img, "question": TASKS["detect"]}, (img, TASKS["detect_text"])]
    kw = dict(temperature=0, max_new_tokens=24, verbose=False)
    batch = w.predict_batch(reqs, **kw)
    serial = [w.predict(img, q, **kw) for q in (TASKS["point"], TASKS["detect"], TASKS["detect_text"])]
    assert batch == serial
    det = w.detect_batch([(img, ["square", "circle"]), (PIL.fromarray(images["img3_28x28"]), "square")], **kw)
    assert det[0] == w.detect(img, ["square", "circle"], **kw)
