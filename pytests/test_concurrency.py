"""One engine and one drop-in worker shared by 8 Python threads: every call gives exactly what the same
call gives alone (greedy, and seeded sampling), errors in some threads leave the others unharmed,
and nothing crashes. Calls overlap for real: the engine releases the GIL while it works."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native import LocateAnythingWorker

PIL = pytest.importorskip("PIL.Image")

THREADS = 8
IMAGES = ("img0_640x360.png", "img1_333x517.png", "img3_28x28.png")
MODES = ("hybrid", "fast", "slow")


@pytest.fixture(scope="module")
def images(fixtures_dir):
    return {name: PIL.open(fixtures_dir / "images" / name).convert("RGB") for name in IMAGES}


@pytest.fixture(scope="module")
def engine(fixtures_dir):
    return la.Engine(str(fixtures_dir / "tiny-a"), threads=2)


@pytest.fixture(scope="module")
def worker(fixtures_dir):
    return LocateAnythingWorker(str(fixtures_dir / "tiny-a"), threads=2, print_stats=False)


def run_threads(jobs_per_thread):
    """Runs each thread's list of zero-argument callables, all threads released at once; returns the
    results per thread (an exception in any thread is re-raised here)."""
    barrier = threading.Barrier(len(jobs_per_thread))

    def body(jobs):
        barrier.wait()
        return [job() for job in jobs]

    with ThreadPoolExecutor(max_workers=len(jobs_per_thread)) as ex:
        futures = [ex.submit(body, jobs) for jobs in jobs_per_thread]
        return [f.result(timeout=600) for f in futures]


def spread(items, per_thread):
    """Each thread gets `per_thread` items, starting at a different offset, so that every item runs in
    several threads and different items overlap."""
    n = len(items)
    return [[items[(t * 5 + k) % n] for k in range(per_thread)] for t in range(THREADS)]


def engine_cases(images):
    cases = []
    for name in IMAGES:
        for mode in MODES:
            cases.append(("detect", name, mode))
            cases.append(("point", name, mode))
    return cases


def run_engine_case(engine, images, case):
    task, name, mode = case
    kw = dict(generation_mode=mode, max_new_tokens=24, temperature=0.0)
    r = engine.detect(images[name], ["square", "circle"], **kw) if task == "detect" else \
        engine.point(images[name], "the circle", **kw)
    return (r.answer, tuple(r.generated_ids), r.stop_reason, repr(r.boxes), repr(r.points), tuple(r.history))


def test_engine_run_from_8_threads_matches_serial(engine, images):
    cases = engine_cases(images)
    serial = {c: run_engine_case(engine, images, c) for c in cases}
    assignment = spread(cases, 4)
    results = run_threads([[lambda c=c: (c, run_engine_case(engine, images, c)) for c in jobs] for jobs in assignment])
    seen = set()
    for per_thread in results:
        for case, got in per_thread:
            assert got == serial[case], case
            seen.add(case)
    assert seen == set(cases)
    # Still consistent after the storm.
    assert run_engine_case(engine, images, cases[0]) == serial[cases[0]]


def test_engine_stages_from_8_threads_match_serial(engine, images):
    """The stage methods (not serialised by the engine's run lock) share its thread pool."""
    img = images["img1_333x517.png"]

    def stages():
        px, grid = engine.preprocess(img)
        merged = engine.vision_features(px, grid)
        projected = engine.project(merged)
        ids = engine.prompt_ids(la._core.task_prompt("point", "x"), [projected.shape[0]])
        logits = engine.prefill_logits(ids, projected, last_n=3)
        text = engine.decode(engine.encode("the circle <|im_end|> é"))
        return px, merged, projected, ids, logits, text

    ref = stages()
    results = run_threads([[stages, stages] for _ in range(THREADS)])
    for per_thread in results:
        for got in per_thread:
            for a, b in zip(got, ref):
                if isinstance(b, np.ndarray):
                    assert a.shape == b.shape and np.array_equal(a, b)
                else:
                    assert a == b


def test_errors_in_some_threads_leave_the_others_unharmed(engine, images):
    good = ("point", "img3_28x28.png", "hybrid")
    expected = run_engine_case(engine, images, good)

    def bad_mode():
        with pytest.raises(ValueError):
            engine.run(images["img3_28x28.png"], "x", generation_mode="sideways")
        return "raised"

    def bad_image():
        with pytest.raises(ValueError):
            engine.run(np.zeros((0, 5, 3), np.uint8), "x")
        return "raised"

    def bad_ids():
        with pytest.raises(ValueError):
            engine.decode([-1])
        return "raised"

    jobs = []
    for t in range(THREADS):
        bad = (bad_mode, bad_image, bad_ids)[t % 3]
        jobs.append([bad, lambda: run_engine_case(engine, images, good), bad])
    for per_thread in run_threads(jobs):
        assert per_thread[0] == per_thread[2] == "raised"
        assert per_thread[1] == expected


def worker_cases():
    cases = []
    for name in IMAGES:
        cases.append(("detect", name, 0.0, None))
        cases.append(("point", name, 0.0, None))
        cases.append(("detect", name, 0.7, 11))  # the worker's sampling defaults with a fixed seed
    return cases


def run_worker_case(worker, images, case):
    task, name, temperature, seed = case
    kw = dict(max_new_tokens=24, temperature=temperature, seed=seed)
    out = worker.detect(images[name], ["square", "circle"], **kw) if task == "detect" else \
        worker.point(images[name], "the circle", **kw)
    return out["answer"], tuple(out["history"])


def test_worker_from_8_threads_matches_serial(worker, images):
    cases = worker_cases()
    serial = {c: run_worker_case(worker, images, c) for c in cases}
    results = run_threads([[lambda c=c: (c, run_worker_case(worker, images, c)) for c in jobs]
                           for jobs in spread(cases, 3)])
    for per_thread in results:
        for case, got in per_thread:
            assert got == serial[case], case


def test_worker_batch_and_single_calls_interleave(worker, images):
    img = images["img0_640x360.png"]
    kw = dict(temperature=0, max_new_tokens=16, verbose=False)
    q = la._core.task_prompt("point", "the circle")
    single = worker.predict(img, q, **kw)["answer"]
    batch_ref = [o["answer"] for o in worker.predict_batch([(img, q), (images["img3_28x28.png"], q)], **kw)]

    def batch():
        return [o["answer"] for o in worker.predict_batch([(img, q), (images["img3_28x28.png"], q)], **kw)]

    def one():
        return worker.predict(img, q, **kw)["answer"]

    results = run_threads([[batch, one] if t % 2 else [one, batch] for t in range(THREADS)])
    for t, per_thread in enumerate(results):
        b, s = (per_thread[0], per_thread[1]) if t % 2 else (per_thread[1], per_thread[0])
        assert b == batch_ref and s == single
    assert batch_ref[0] == single
