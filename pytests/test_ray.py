"""locateanything_native.ray: the Ray Data predictor against the serial engine, on the tiny checkpoint.

Starts one local Ray instance (2 CPUs) for the module. Checks: answers through Ray equal the serial
Engine row for row (arrays, paths, PNG and JPEG bytes), other columns pass through, bad rows get an error
and the rest run, engine threads follow the actor's CPUs (not OMP_NUM_THREADS=1), sampled answers with a
seed do not depend on the batch split, a killed actor is restarted and every row comes out exactly once,
and the output columns are plain Arrow types (written to Parquet and read back).
"""
from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import locateanything_native as la

PACKAGE_ROOT = pathlib.Path(la.__file__).resolve().parents[1]
MAX_NEW = 16
QUESTIONS = ["Point to: the door.", "Detect all the text in box format.",
             "Locate all the instances that matches the following description: person</c>car."]


def test_import_without_ray():
    """`import locateanything_native` works without Ray; the ray module says how to install it."""
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import locateanything_native as la\n"
        "assert 'locateanything_native.ray' not in sys.modules\n"
        "try:\n"
        "    import locateanything_native.ray\n"
        "except ImportError as exc:\n"
        "    print('IMPORTERROR', exc)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout and "pip install locateanything_native[ray]" in out.stdout, out.stdout


@pytest.fixture(scope="module")
def ray_mod():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install locateanything_native[ray])")
    pytest.importorskip("pyarrow", reason="Ray Data needs pyarrow")
    # Workers inherit the raylet's environment: make the package importable there (absolute path).
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")] if p)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False,
             configure_logging=False)
    import ray.data

    with warnings.catch_warnings():  # Ray's own DataContext defaults warn about its deprecated fields
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        ctx.enable_operator_progress_bars = False
    except AttributeError:  # pragma: no cover - older Ray
        pass
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model(fixtures_dir):
    return str(fixtures_dir / "tiny-a")


@pytest.fixture(scope="module")
def serial(model):
    return la.Engine(model, threads=1, quantization="none")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(96, 128), (112, 80), (64, 64)]]


def _encode(arr, fmt):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _predict(ds, model, *, concurrency=1, num_cpus=1, batch_size=4, batch_format="numpy", remote=None, **kw):
    import ray.data

    from locateanything_native.ray import LocateAnythingPredictor

    kwargs = {"model": model, "quantization": "none", "max_new_tokens": MAX_NEW, **kw}
    out = ds.map_batches(LocateAnythingPredictor, fn_constructor_kwargs=kwargs,
                         compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus,
                         batch_size=batch_size, batch_format=batch_format, **(remote or {}))
    return sorted(out.take_all(), key=lambda r: r["id"])


def _check_row(row, reference):
    d = reference.to_dict()
    assert row["error"] == "", row["error"]
    assert row["answer"] == d["answer"]
    assert (row["width"], row["height"]) == (d["width"], d["height"])
    assert row["stop_reason"] == d["stop_reason"]
    assert [b["label"] for b in row["boxes"]] == [b["label"] for b in d["boxes"]]
    for got, want in zip(row["boxes"], d["boxes"]):
        assert [got[k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx([want[k] for k in ("x1", "y1", "x2", "y2")])
    assert len(row["points"]) == len(d["points"])
    assert len(row["scores"]) == len(d["boxes"]) + len(d["points"])
    assert row["timings"]["generated_tokens"] == d["timings"]["generated_tokens"]


def test_module_is_not_shadowing_ray(ray_mod):
    import locateanything_native.ray as lr

    assert lr.ray is ray_mod and lr.ray.__name__ == "ray" and hasattr(lr.ray, "remote")
    assert sys.modules["ray"] is ray_mod


def test_matches_serial_engine(ray_mod, model, serial, images):
    rows = [{"id": i, "image": images[i % 3], "question": QUESTIONS[(i // 3) % 3], "extra": f"x{i}",
             "weight": 0.5 * i} for i in range(7)]
    out = _predict(ray_mod.data.from_items(rows), model, concurrency=2, batch_size=3)
    assert [r["id"] for r in out] == list(range(7))
    for r, src in zip(out, rows):
        assert r["extra"] == src["extra"] and r["weight"] == src["weight"]
        assert np.array_equal(r["image"], src["image"])
        _check_row(r, serial.run(src["image"], src["question"], max_new_tokens=MAX_NEW))


def test_mixed_image_forms(ray_mod, model, serial, images, fixtures_dir, tmp_path):
    path = str(fixtures_dir / "images" / "img3_28x28.png")
    png, jpeg = _encode(images[0], "PNG"), _encode(images[1], "JPEG")
    forms = [images[2], path, png, jpeg, images[0]]
    rows = [{"id": i, "image": f, "question": QUESTIONS[i % 3]} for i, f in enumerate(forms)]
    # In one batch, straight (Python objects of any kind) ...
    from locateanything_native.ray import LocateAnythingPredictor

    pred = LocateAnythingPredictor(model, quantization="none", max_new_tokens=MAX_NEW, threads=1)
    assert pred.threads == 1 and pred.info()["assigned_cpus"] is None  # in the driver: no Ray assignment
    col = np.empty(len(forms), dtype=object)
    for i, f in enumerate(forms):
        col[i] = f
    batch = {"id": np.arange(len(forms)), "image": col, "question": np.array([r["question"] for r in rows])}
    direct = pred(batch)
    # ... and through Ray: bytes from read_binary_files, paths as strings, arrays.
    files = []
    for i, data in enumerate([png, jpeg]):
        p = tmp_path / f"img{i}.{'png' if i == 0 else 'jpg'}"
        p.write_bytes(data)
        files.append(str(p))
    ds = ray_mod.data.read_binary_files(files, include_paths=True)
    ds = ds.map(lambda r: {**r, "id": 2 if r["path"].endswith(".png") else 3, "question": QUESTIONS[2 if r["path"].endswith(".png") else 0]})
    via_bytes = _predict(ds, model, batch_size=2)
    via_paths = _predict(ray_mod.data.from_items([{"id": 1, "image": path, "question": QUESTIONS[1]}]), model)
    for i, src in enumerate(rows):
        ref = serial.run(la.to_array(src["image"]), src["question"], max_new_tokens=MAX_NEW)
        _check_row({k: direct[k][i] for k in direct}, ref)
    _check_row(via_paths[0], serial.run(path, QUESTIONS[1], max_new_tokens=MAX_NEW))
    assert [r["id"] for r in via_bytes] == [2, 3] and "bytes" in via_bytes[0] and "path" in via_bytes[0]
    _check_row(via_bytes[0], serial.run(png, QUESTIONS[2], max_new_tokens=MAX_NEW))
    _check_row(via_bytes[1], serial.run(jpeg, QUESTIONS[0], max_new_tokens=MAX_NEW))


def test_tasks_bad_rows_and_arrow(ray_mod, model, serial, images, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from locateanything_native import _core

    img = images[0]
    rows = [
        {"id": 0, "image": img, "task": "detect", "categories": ["person", "car"], "phrase": None},
        {"id": 1, "image": img, "task": "point", "categories": None, "phrase": "the door"},
        {"id": 2, "image": img, "task": "no_such_task", "categories": None, "phrase": "x"},
        {"id": 3, "image": img, "task": None, "categories": None, "phrase": None},          # no question, no task
        {"id": 4, "image": img, "task": "ground-single", "categories": None, "phrase": None},  # no phrase
        {"id": 5, "image": img, "task": "detect_text", "categories": None, "phrase": None},
    ]
    good = _predict(ray_mod.data.from_items(rows), model, batch_size=6)
    want = {0: _core.task_prompt("detect", "person</c>car"), 1: _core.task_prompt("point", "the door"),
            5: _core.task_prompt("detect_text", "")}
    for r in good:
        if r["id"] in want:
            _check_row(r, serial.run(img, want[r["id"]], max_new_tokens=MAX_NEW))
        else:
            assert r["error"] and r["answer"] == "" and r["stop_reason"] == "error" and r["timings"] is None
    assert "unknown task" in good[2]["error"] and "no question and no task" in good[3]["error"]
    assert "needs a phrase" in good[4]["error"]

    # Unreadable bytes next to good bytes (object column), plus the constructor's fixed task.
    png = _encode(img, "PNG")
    rows = [{"id": i, "image": b, "phrase": p} for i, (b, p) in
            enumerate([(png, "a cat"), (b"\x89PNG not really", "a dog"), (png, None), (b"", "a cup")])]
    ds = ray_mod.data.from_items(rows).map_batches(
        __import__("locateanything_native.ray", fromlist=["x"]).LocateAnythingPredictor,
        fn_constructor_kwargs={"model": model, "quantization": "none", "max_new_tokens": MAX_NEW,
                               "task": "ground_single", "phrase": "a thing"},
        compute=ray_mod.data.ActorPoolStrategy(size=1), num_cpus=1, batch_size=4)
    ds.write_parquet(str(tmp_path / "pq"))
    table = pq.read_table(str(tmp_path / "pq"))
    assert pa.types.is_list(table.schema.field("boxes").type)
    assert pa.types.is_struct(table.schema.field("boxes").type.value_type)
    assert pa.types.is_list(table.schema.field("scores").type)
    assert pa.types.is_struct(table.schema.field("timings").type)
    assert pa.types.is_string(table.schema.field("answer").type)
    assert pa.types.is_string(table.schema.field("error").type)
    out = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in out] == [0, 1, 2, 3]
    _check_row(out[0], serial.run(img, _core.task_prompt("ground_single", "a cat"), max_new_tokens=MAX_NEW))
    _check_row(out[2], serial.run(img, _core.task_prompt("ground_single", "a thing"), max_new_tokens=MAX_NEW))
    assert "cannot read" in out[1]["error"] and "empty" in out[3]["error"]


def test_pandas_batches_and_predict_dataset(ray_mod, model, serial, images):
    from locateanything_native.ray import predict_dataset

    rows = [{"id": i, "image": images[i % 2], "question": QUESTIONS[i % 3]} for i in range(4)]
    ds = predict_dataset(ray_mod.data.from_items(rows), model, concurrency=1, num_cpus_per_actor=1, batch_size=4,
                         batch_format="pandas", quantization="none", max_new_tokens=MAX_NEW, keep_image=False)
    out = sorted(ds.take_all(), key=lambda r: r["id"])
    assert "image" not in out[0]
    for r, src in zip(out, rows):
        _check_row(r, serial.run(src["image"], src["question"], max_new_tokens=MAX_NEW))


def test_read_images_pipeline(ray_mod, model, serial, fixtures_dir):
    """ray.data.read_images (decode tasks upstream of the actors, images of different sizes) through
    predict_dataset's default CPUs per actor, which leave a CPU to the read tasks."""
    from locateanything_native import _core
    from locateanything_native.ray import predict_dataset

    names = ["img3_28x28.png", "img0_640x360.png", "img1_333x517.png"]
    ds = ray_mod.data.read_images([str(fixtures_dir / "images" / n) for n in names], include_paths=True, mode="RGB")
    out = predict_dataset(ds, model, concurrency=1, quantization="none", max_new_tokens=MAX_NEW, task="point",
                          phrase="the door").take_all()
    assert sorted(pathlib.Path(r["path"]).name for r in out) == sorted(names)
    for r in out:
        _check_row(r, serial.run(r["path"], _core.task_prompt("point", "the door"), max_new_tokens=MAX_NEW))


def test_threads_follow_ray_cpus(ray_mod, model):
    from locateanything_native.ray import LocateAnythingPredictor

    Actor = ray_mod.remote(LocateAnythingPredictor)
    env = {"env_vars": {"OMP_NUM_THREADS": "1"}}
    cases = [({"num_cpus": 2, "runtime_env": env}, {}, 2),
             ({"num_cpus": 2, "runtime_env": env}, {"threads": 1}, 1),
             ({"num_cpus": 1}, {"threads": 4}, 1),        # never more than Ray assigned
             ({"num_cpus": 0.5}, {}, 1)]
    for options, kwargs, want in cases:
        actor = Actor.options(**options).remote(model, quantization="none", **kwargs)
        try:
            info = ray_mod.get(actor.info.remote(), timeout=120)
        finally:
            ray_mod.kill(actor)
        assert info["threads"] == want, (options, kwargs, info)
        if options.get("runtime_env"):
            assert info["omp_num_threads"] == "1"


def test_sampling_seed_independent_of_split(ray_mod, model, serial, images):
    from locateanything_native.ray import row_key, row_seed

    rows = [{"id": i, "image": images[i % 3], "question": QUESTIONS[i % 2]} for i in range(6)]
    opts = {"temperature": 1.0, "top_p": 0.95, "seed": 11}
    a = _predict(ray_mod.data.from_items(rows), model, batch_size=6, **opts)
    b = _predict(ray_mod.data.from_items(rows), model, batch_size=1, concurrency=2, **opts)
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    for r, src in zip(a, rows):
        seed = row_seed(11, row_key(src["image"], src["question"], src["id"]))
        ref = serial.run(src["image"], src["question"], max_new_tokens=MAX_NEW, temperature=1.0, top_p=0.95, seed=seed)
        assert r["answer"] == ref.answer
    assert len({r["answer"] for r in a}) > 1  # sampling does differ between rows
    # Without an id column the key is the content: same pixels (any form) and question, same key.
    assert row_key(images[0], "q") == row_key(images[0].copy(), "q") != row_key(images[0], "q2")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_killed_actor_every_row_once(ray_mod, model, serial, images, tmp_path):
    """The actor exits (os._exit) at its second batch, once (a marker file); Ray restarts it and retries
    the batch: every row comes out exactly once, with the serial answer. Ray Data's actor pools restart
    and retry by default (max_restarts=-1, max_task_retries=-1); finite values here keep a predictor
    that died on every attempt from hanging the test (Ray 2.60 deprecates passing them this way)."""
    marker = tmp_path / "died"
    rows = [{"id": i, "image": images[i % 3], "question": QUESTIONS[i % 3]} for i in range(8)]
    out = _predict(ray_mod.data.from_items(rows), model, batch_size=2, concurrency=1,
                   _test_die_after=1, _test_die_marker=str(marker),
                   remote={"max_restarts": 2, "max_task_retries": 2})
    assert marker.exists(), "the actor was meant to die once"
    assert [r["id"] for r in out] == list(range(8))
    for r, src in zip(out, rows):
        _check_row(r, serial.run(src["image"], src["question"], max_new_tokens=MAX_NEW))
