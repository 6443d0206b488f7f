"""The correctness sweep: sampling that samples, results that cross processes, threads from the CPU
budget, a load that says what it is doing, and confidence scores from the decoder's probabilities."""
import copy
import json
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native import _core
from locateanything_native.checkpoint import write_random_checkpoint
from locateanything_native.engine import stream_seed


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory) -> str:
    """Random weights (std 0.5): flat next-token distributions, so samples differ from draw to draw."""
    return write_random_checkpoint(
        tmp_path_factory.mktemp("sweep") / "ckpt",
        {"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 64},
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
         "num_key_value_heads": 2},
        seed=5, std=0.5)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return (np.random.default_rng(1).random((56, 84, 3)) * 255).astype(np.uint8)


def _worker(path, **kw):
    return la.LocateAnythingWorker(path, quantization="none", print_stats=False, threads=1, **kw)


GEN = dict(max_new_tokens=16, verbose=False)
QUESTION = "Locate all the cats in the image."


# ---- sampling ----

def test_repeated_sampled_calls_differ(random_ckpt, image):
    w = _worker(random_ckpt)
    answers = [w.predict(image, QUESTION, **GEN)["answer"] for _ in range(3)]
    assert len(set(answers)) > 1, answers


def test_batch_rows_draw_from_independent_streams(random_ckpt, image):
    w = _worker(random_ckpt)
    rows = w.predict_batch([(image, QUESTION)] * 4, **GEN)
    assert len({r["answer"] for r in rows}) > 1


def test_a_fresh_worker_with_the_same_seed_repeats_the_sequence(random_ckpt, image):
    a = [_worker(random_ckpt, seed=3).predict(image, QUESTION, **GEN)["answer"] for _ in range(1)]
    w1, w2 = _worker(random_ckpt, seed=3), _worker(random_ckpt, seed=3)
    seq1 = [w1.predict(image, QUESTION, **GEN)["answer"] for _ in range(3)]
    seq2 = [w2.predict(image, QUESTION, **GEN)["answer"] for _ in range(3)]
    assert seq1 == seq2 and seq1[0] == a[0]
    other = [_worker(random_ckpt, seed=4).predict(image, QUESTION, **GEN)["answer"] for _ in range(3)]
    assert other != seq1


def test_a_call_seed_fixes_that_call_alone(random_ckpt, image):
    w1, w2 = _worker(random_ckpt), _worker(random_ckpt)
    first = w1.predict(image, QUESTION, **GEN)["answer"]
    assert w2.predict(image, QUESTION, **GEN)["answer"] == first
    fixed = w2.predict(image, QUESTION, seed=11, **GEN)["answer"]
    assert w2.predict(image, QUESTION, seed=11, **GEN)["answer"] == fixed
    # The seeded calls did not advance w2's generator: its next call is w1's second call.
    assert w2.predict(image, QUESTION, **GEN)["answer"] == w1.predict(image, QUESTION, **GEN)["answer"]


def test_batch_seed_streams_match_single_calls(random_ckpt, image):
    w = _worker(random_ckpt)
    rows = w.predict_batch([(image, QUESTION)] * 3, seed=9, **GEN)
    assert rows == w.predict_batch([(image, QUESTION)] * 3, seed=9, **GEN)
    # Row 0 of a call with seed s is the single call with seed s; row i uses stream (s, i).
    assert rows[0]["answer"] == w.predict(image, QUESTION, seed=9, **GEN)["answer"]
    e = w.engine
    for i, row in enumerate(rows):
        r = e.core.run([image], QUESTION, temperature=0.7, top_p=0.9, repetition_penalty=1.1, max_new_tokens=16,
                       seed=stream_seed(9, i))
        assert r.answer == row["answer"]


def test_engine_run_batch_takes_seed_and_greedy_ignores_it(random_ckpt, image):
    e = la.Engine(random_ckpt, quantization="none", threads=1)
    greedy = [r.answer for r in e.run_batch([(image, QUESTION)] * 2, seed=1, max_new_tokens=12)]
    assert greedy[0] == greedy[1] == e.run(image, QUESTION, max_new_tokens=12).answer
    with pytest.raises(ValueError, match="seed"):
        e.run(image, QUESTION, seed=-1)


# ---- results that cross processes ----

def test_worker_dicts_pickle_and_deepcopy(random_ckpt, image):
    w = _worker(random_ckpt)
    out = w.predict(image, QUESTION, max_new_tokens=8)  # verbose: answer, history, stats
    for clone in (pickle.loads(pickle.dumps(out)), copy.deepcopy(out)):
        assert clone == out
        assert isinstance(clone["stats"], la.Stats) and clone["stats"].timings == out["stats"].timings


def test_engine_results_pickle_and_copy(fixtures_dir):
    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none", threads=2)
    from PIL import Image

    r = e.detect(Image.open(fixtures_dir / "images" / "img0_640x360.png"), ["person", "car"], max_new_tokens=40,
                 record_steps=True)
    for clone in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r), copy.copy(r)):
        assert clone.to_dict() == r.to_dict()
        assert clone.history == r.history and clone.step_times == r.step_times and clone.steps == r.steps
        assert clone.prompt_ids == r.prompt_ids and clone.token_probs == r.token_probs
        assert clone.none_count == r.none_count and clone == r


def test_to_dict_is_the_documented_json_record(fixtures_dir):
    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none", threads=2)
    r = e.point(np.zeros((40, 60, 3), np.uint8), "the door", max_new_tokens=20)
    d = r.to_dict()
    assert list(d) == ["answer", "width", "height", "boxes", "points", "none_count", "stop_reason", "generated_ids",
                       "forward_calls", "switch_to_ar", "loop_guard_fired", "timings"]
    assert json.loads(json.dumps(d)) == d
    assert (d["width"], d["height"]) == (60, 40) and d["answer"] == r.answer and d["boxes"] == r.boxes


# ---- threads from the CPU budget ----

def _budget(env=None, cpus=None):
    code = ("import os, json\n"
            + (f"os.sched_setaffinity(0, {set(cpus)!r})\n" if cpus else "")
            + "import locateanything_native as la\n"
            "print(json.dumps(la._core.default_thread_budget()))")
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LOCATEANYTHING_THREADS")}
    full.update(env or {})
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout))


def test_threads_follow_the_affinity_mask():
    threads, source = _budget(cpus=[0])
    assert threads == 1 and "affinity" in source


def test_threads_capped_by_environment():
    assert _budget({"OMP_NUM_THREADS": "1"}) == (1, "OMP_NUM_THREADS=1")
    assert _budget({"LOCATEANYTHING_THREADS": "1", "OMP_NUM_THREADS": "8"}) == (1, "LOCATEANYTHING_THREADS=1")
    # A cap above the budget changes nothing; nonsense is ignored.
    full, _ = _budget()
    assert _budget({"OMP_NUM_THREADS": "999"})[0] == full
    assert _budget({"OMP_NUM_THREADS": "lots"})[0] == full


def test_engine_reports_its_thread_source(fixtures_dir, monkeypatch):
    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none", threads=1)
    assert e.threads == 1 and e.threads_source == "threads=1 (argument)"
    assert "threads=1" in repr(e)
    monkeypatch.setenv("LOCATEANYTHING_THREADS", "1")
    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none")
    assert e.threads == 1 and e.threads_source == "LOCATEANYTHING_THREADS=1"


# ---- the load says what it is doing ----

def test_first_quantised_load_reports_progress(fixtures_dir, tmp_path, caplog):
    events = []
    cache = tmp_path / "packed.safetensors"
    with caplog.at_level(logging.INFO, logger="locateanything_native"):
        e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="int4", packed_cache=str(cache), threads=2,
                      progress=lambda *a: events.append(a))
    stages = [s for s, _, _ in events]
    assert stages[0] == "open" and stages[-1] == "done"
    assert "build_cache" in stages and "write_cache" in stages and "quantise" in stages
    fractions = [f for s, f, _ in events if s == "quantise"]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    build = next(m for s, _, m in events if s == "build_cache")
    assert str(cache) in build and " s for these " in build
    assert any("loaded in" in rec.getMessage() for rec in caplog.records)
    assert e.core.packed_cache_file == str(cache)

    events.clear()
    la.Engine(str(fixtures_dir / "tiny-a"), quantization="int4", packed_cache=str(cache), threads=2,
              progress=lambda *a: events.append(a))
    stages = [s for s, _, _ in events]
    assert stages == ["open", "map_cache", "done"]


def test_quantization_names_are_exported_and_all_load(fixtures_dir):
    names = _core.QUANTIZATIONS
    assert {"none", "int8", "int4", "int4-b128", "int4-visf"} <= set(names)
    for q in names:
        la.Engine(str(fixtures_dir / "tiny-a"), quantization=q, packed_cache=False, threads=1)


# ---- scores ----

def test_box_scores_are_geometric_means_of_coordinate_probabilities(fixtures_dir):
    from PIL import Image

    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none", threads=2)
    img = Image.open(fixtures_dir / "images" / "img0_640x360.png")
    found = 0
    for mode in ("slow", "fast", "hybrid"):
        r = e.detect(img, ["person", "car"], generation_mode=mode, max_new_tokens=64)
        ids, probs = r.generated_ids, r.token_probs
        assert len(probs) == len(ids) and all(0 < p <= 1 for p in probs if p == p)
        box_start, box_end = e.encode("<box>")[0], e.encode("</box>")[0]
        coord0 = e.encode("<0>")[0]
        expected = []
        for i, t in enumerate(ids):
            if t != box_start:
                continue
            j = i + 1
            while j < len(ids) and coord0 <= ids[j] <= coord0 + 1000 and j - i <= 4:
                j += 1
            if j - i - 1 in (2, 4) and j < len(ids) and ids[j] == box_end:
                expected.append(float(np.exp(np.mean(np.log(probs[i + 1:j])))))
        got = [b["score"] for b in r.boxes] + [p["score"] for p in r.points]
        assert sorted(got) == pytest.approx(sorted(expected), rel=1e-6)
        found += len(got)
    assert found > 0


def test_first_token_probability_is_the_softmax_of_the_prefill_logits(fixtures_dir):
    # Greedy, no penalty: the first generated id's probability is its softmax under the prefill logits.
    e = la.Engine(str(fixtures_dir / "tiny-a"), quantization="none", threads=2)
    img = np.full((56, 56, 3), 128, np.uint8)
    r = e.detect(img, ["person"], generation_mode="slow", max_new_tokens=4)
    px, grid = e.preprocess(img)
    rows = e.vision_features(px, grid, project=True)
    logits = e.prefill_logits(r.prompt_ids, rows, last_n=1)[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert r.token_probs[0] == pytest.approx(p[r.generated_ids[0]], rel=1e-4)


def test_worker_scores_are_opt_in(fixtures_dir):
    from PIL import Image

    img = Image.open(fixtures_dir / "images" / "img0_640x360.png")
    plain = la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), quantization="none", print_stats=False)
    assert "scores" not in plain.detect(img, ["person"], temperature=0, max_new_tokens=40, verbose=False)
    w = la.LocateAnythingWorker(str(fixtures_dir / "tiny-a"), quantization="none", print_stats=False,
                                return_scores=True)
    out = w.detect(img, ["person"], temperature=0, max_new_tokens=40, verbose=False)
    assert len(out["scores"]["boxes"]) == len(w.parse_boxes(out["answer"], *img.size))
    assert len(out["scores"]["points"]) == len(w.parse_points(out["answer"], *img.size))
