"""Scale out on Ray: run LocateAnything over a Ray Dataset with one engine per actor.

    import ray
    from locateanything_native.ray import LocateAnythingPredictor

    ds = ray.data.read_images("s3://bucket/photos/", include_paths=True)       # column "image": H×W×3 uint8
    out = ds.map_batches(
        LocateAnythingPredictor,
        fn_constructor_kwargs={"model": "/models/LocateAnything-3B", "task": "detect",
                               "categories": ["person", "car"], "max_new_tokens": 512},
        compute=ray.data.ActorPoolStrategy(size=4),     # 4 actors (concurrency=4 before Ray 2.51)
        num_cpus=8, batch_size=8)                       # 8 CPUs each = 8 engine threads
    # (leave CPUs free for read_images' decode tasks: actors holding every CPU starve them)
    out.write_parquet("detections/")        # plain columns: answer, boxes, points, scores, ...

Needs Ray (`pip install locateanything_native[ray]`, ray >= 2.50). This module is
`locateanything_native.ray`; inside it `import ray` is the real Ray (Python 3 imports are absolute), and
`import locateanything_native` never imports this module, so the package works without Ray.

Input rows: an image column (`image`, else `bytes` as `ray.data.read_binary_files` names it; or
`image_column=`) holding an H×W×3 uint8 array, encoded image bytes (JPEG, PNG, ...), a path, a PIL image
or a `{"bytes": ..., "path": ...}` dict; and either a `question` column (the whole question) or a
`task` column (detect, ground_single, ground_multi, ground_text, detect_text, ground_gui,
ground_gui_point, point; hyphens are read as underscores) with a `categories` column (a list of
names, or one str used as the engine's `detect` uses it: a single name or names joined by "</c>") or a
`phrase` column. Columns that are absent (or null in a row) fall back to the constructor's fixed
`task` / `categories` / `phrase`. Every other column passes through unchanged.

Output columns added to each row: `answer` (str), `boxes` ([{label, x1, y1, x2, y2, score}], pixels of
the original image), `points` ([{label, x, y, score}]), `scores` (the item scores, boxes then points),
`width`, `height` (the original image), `stop_reason`, `error` ("" when the row ran; otherwise what was
wrong: an unreadable image, an unknown task, no question... the rest of the batch still runs) and
`timings` (seconds per stage and token counts, null for a failed row).

Sampling (temperature > 0) with `seed=`: each row draws from its own stream, derived from (seed, the
row's key), where the key is the row's `id` (or `index`) column when there is one, else a hash of its
decoded image and question. So the answers do not depend on how Ray splits the data into batches or
actors, and one row is reproduced alone with
`Engine.run(image, question, seed=row_seed(seed, row_key(image, question, id)))`. Without `seed=`
each actor draws from its engine's running generator (seeded 0), which depends on the split.
Greedy decoding (temperature 0, the default) is deterministic either way.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any, Iterable, Optional

try:
    import ray  # the real Ray: absolute import, never this module
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "locateanything_native.ray needs Ray (ray>=2.50): pip install locateanything_native[ray] "
        f"(or pip install 'ray[data]>=2.50'); importing it failed: {_exc}"
    ) from _exc

import numpy as np

from . import _core, prompts
from .engine import Engine
from .images import to_array

log = logging.getLogger("locateanything_native")

__all__ = ["LocateAnythingPredictor", "predict_dataset", "row_key", "row_seed", "TASKS", "OUTPUT_COLUMNS"]

# The tasks a row may name (visual prompts need a second image, which rows do not carry).
TASKS = tuple(t for t in prompts.TASKS if t != "detect_visual_prompt")
OUTPUT_COLUMNS = ("answer", "boxes", "points", "scores", "width", "height", "stop_reason", "error", "timings")
_KEY_COLUMNS = ("id", "index")


def _ray_version_ok(version: str) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= (2, 50)


if not _ray_version_ok(getattr(ray, "__version__", "0")):  # pragma: no cover - depends on the environment
    raise ImportError(f"locateanything_native.ray needs ray>=2.50, found ray {ray.__version__}: "
                      "pip install -U locateanything_native[ray]")


# ---- row keys and seeds ----
def _key_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return b"b:" + bytes(value)
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return b"i:" + str(int(value)).encode()
    return b"s:" + str(value).encode("utf-8", "surrogatepass")


def row_key(image, question: str, id=None) -> bytes:
    """The stable key of a row: its `id` value when given, else a hash of the decoded image (any form:
    array, path, bytes, PIL give the same key for the same pixels) and the question."""
    if id is not None:
        return b"id:" + _key_bytes(id)
    arr = np.ascontiguousarray(to_array(image))
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((arr.shape, arr.dtype.str)).encode())
    h.update(arr.data.cast("B"))
    h.update(b"\0q:" + str(question).encode("utf-8", "surrogatepass"))
    return b"content:" + h.digest()


def row_seed(seed: int, key: bytes) -> int:
    """The seed of the row with key `key` (see `row_key`) in a run with `seed=`; pass it as
    `Engine.run(..., seed=row_seed(seed, key))` to reproduce that row alone."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    h = hashlib.blake2b(str(int(seed)).encode() + b"\0" + bytes(key), digest_size=8, person=b"la-row-seed")
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


# ---- threads ----
def _assigned_cpus() -> Optional[float]:
    """CPUs Ray assigned to the calling worker (actor or task), or None outside a Ray worker."""
    if not ray.is_initialized():
        return None
    ctx = ray.get_runtime_context()
    try:
        worker_mode = getattr(ray, "WORKER_MODE", 1)
        if getattr(getattr(ctx, "worker", None), "mode", worker_mode) != worker_mode:
            return None  # the driver (asking it for task ids or resources only logs warnings)
        return float(ctx.get_assigned_resources().get("CPU", 0.0))
    except (AssertionError, RuntimeError):  # the driver: "only available when the process is a worker"
        return None


def resolve_threads(threads: Optional[int], assigned: Optional[float]) -> tuple[int, str]:
    """(engine threads, why). `threads` when given, else the CPUs Ray assigned (rounded down, at least
    1), never more than the assignment; outside Ray 0 (the engine's own choice)."""
    cap = max(1, int(math.floor(assigned + 1e-9))) if assigned else None
    if threads is not None and int(threads) > 0:
        threads = int(threads)
        if cap is not None and threads > cap:
            log.warning("threads=%d is more than the %g CPUs Ray assigned to this actor: using %d "
                        "(raise num_cpus to use more)", threads, assigned, cap)
            return cap, f"threads={threads} capped by Ray's CPU={assigned:g}"
        return threads, "threads argument"
    if cap is not None:
        return cap, f"Ray assigned CPU={assigned:g}"
    if assigned is not None:  # a Ray worker with num_cpus=0
        return 1, "Ray assigned CPU=0"
    return 0, "engine default (not in a Ray worker)"


# ---- inputs ----
def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (str, np.str_)) and not str(value).strip():
        return True
    return False


def _decode_image(value) -> np.ndarray:
    if isinstance(value, dict):  # Hugging Face datasets style {"bytes": ..., "path": ...}
        if value.get("bytes") is not None:
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise ValueError("the image dict has neither 'bytes' nor 'path'")
    if value is None:
        raise ValueError("the row has no image (null)")
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            if value.ndim == 0:
                return _decode_image(value.item())
            raise ValueError(f"the image is an object array of shape {value.shape}: pass H×W×3 uint8 pixels")
        if value.dtype.kind == "S":
            raise ValueError("the image is a fixed-width numpy bytes array (trailing zero bytes are lost): "
                             "pass the encoded bytes as Python bytes")
        return np.ascontiguousarray(value)  # the engine checks dtype and shape (grey, RGBA converted)
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, (bytes, bytearray)) and len(value) == 0:
        raise ValueError("the image bytes are empty")
    return to_array(value)


def _text(value, what: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {type(value).__name__}")
    return str(value)


def _categories_text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        names = [_text(v, "a category") for v in value if not _missing(v)]
        if not names:
            raise ValueError("task 'detect' needs at least one category")
        return _core.join_categories(names)
    text = _text(value, "categories")
    if not text.strip():
        raise ValueError("task 'detect' needs at least one category")
    return text


def _question(row: dict, fixed: dict) -> str:
    question = row.get("question")
    if not _missing(question):
        return _text(question, "question")
    task = row.get("task")
    if _missing(task):
        task = fixed.get("task")
    if _missing(task):
        raise ValueError("the row has no question and no task: give a 'question' column, or a 'task' "
                         "column / task= with categories or phrase")
    task = _text(task, "task").strip().lower().replace("-", "_")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)} (or a 'question' column)")
    kind = prompts.TASKS[task]
    if kind == "categories":
        cats = row.get("categories")
        if _missing(cats) or (isinstance(cats, (list, tuple, np.ndarray)) and len(cats) == 0):
            cats = fixed.get("categories")
        if _missing(cats):
            raise ValueError("task 'detect' needs categories (a 'categories' column or categories=)")
        return prompts.question(task, _categories_text(cats))
    if kind == "phrase":
        phrase = row.get("phrase")
        if _missing(phrase):
            phrase = fixed.get("phrase")
        if _missing(phrase):
            raise ValueError(f"task {task!r} needs a phrase (a 'phrase' column or phrase=)")
        return prompts.question(task, _text(phrase, "phrase"))
    return prompts.question(task)


# ---- outputs ----
def _object_column(values: list) -> np.ndarray:
    col = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        col[i] = v
    return col


def _record(result) -> dict:
    d = result.to_dict()
    boxes = [{"label": str(b["label"]), "x1": float(b["x1"]), "y1": float(b["y1"]), "x2": float(b["x2"]),
              "y2": float(b["y2"]), "score": None if b.get("score") is None else float(b["score"])}
             for b in d["boxes"]]
    points = [{"label": str(p["label"]), "x": float(p["x"]), "y": float(p["y"]),
               "score": None if p.get("score") is None else float(p["score"])} for p in d["points"]]
    timings = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in d["timings"].items()}
    return {"answer": d["answer"], "boxes": boxes, "points": points,
            "scores": [b["score"] for b in boxes] + [p["score"] for p in points],
            "width": int(d["width"]), "height": int(d["height"]), "stop_reason": d["stop_reason"],
            "error": "", "timings": timings}


def _error_record(message: str) -> dict:
    return {"answer": "", "boxes": [], "points": [], "scores": [], "width": 0, "height": 0,
            "stop_reason": "error", "error": message, "timings": None}


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class LocateAnythingPredictor:
    """A callable class for `Dataset.map_batches`: loads one engine per actor, runs each batch with
    `Engine.run_batch` (rows sharing an image share its encoding and prompt prefix; each row gives the
    tokens it gives alone) and adds the output columns (see the module docstring).

    Constructor keywords: `model` (a checkpoint folder or Hugging Face id; None = $LOCATEANYTHING_MODEL
    on the worker), `quantization` ("int4" default, "int4-b128", "int8", "none"), `threads` (None = the
    CPUs Ray assigned to the actor, i.e. map_batches' num_cpus, never more than that; Ray sets
    OMP_NUM_THREADS=1 in workers, so the engine is always given an explicit count), `packed_cache`,
    `vision_cache_mb`; decoding: `generation_mode`, `max_new_tokens`, `temperature`, `top_p`, `top_k`,
    `repetition_penalty`, `loop_guard`, `seed` (per-row streams, see the module docstring),
    `chat_template`; fixed `task`, `categories`, `phrase` for rows without those columns;
    `image_column` (default "image", else "bytes"); `keep_image=False` drops the image column from the
    output.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        quantization: str = "int4",
        threads: Optional[int] = None,
        packed_cache: Any = True,
        vision_cache_mb: float = 0,
        generation_mode: str = "hybrid",
        max_new_tokens: int = 2048,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        loop_guard: bool = False,
        seed: Optional[int] = None,
        chat_template: str = "worker",
        task: Optional[str] = None,
        categories: Optional[Iterable[str] | str] = None,
        phrase: Optional[str] = None,
        image_column: Optional[str] = None,
        keep_image: bool = True,
        _test_die_after: Optional[int] = None,
        _test_die_marker: Optional[str] = None,
    ):
        if seed is not None:
            row_seed(seed, b"")  # validates
        if chat_template not in ("worker", "eval"):
            raise ValueError(f"chat_template must be 'worker' or 'eval', got {chat_template!r}")
        self.fixed = {"task": task, "categories": list(categories) if isinstance(categories, (list, tuple)) else categories,
                      "phrase": phrase}
        if task is not None:  # fail at start-up, not on every row
            _question({}, {"task": task, "categories": self.fixed["categories"] or ["x"], "phrase": phrase or "x"})
        self.options: dict[str, Any] = {"generation_mode": generation_mode, "max_new_tokens": int(max_new_tokens),
                        "temperature": float(temperature), "top_p": float(top_p), "top_k": int(top_k),
                        "repetition_penalty": float(repetition_penalty), "loop_guard": bool(loop_guard),
                        "chat_template": chat_template}
        self.seed = seed
        self.image_column = image_column
        self.keep_image = keep_image
        self.assigned_cpus = _assigned_cpus()
        n_threads, self.threads_reason = resolve_threads(threads, self.assigned_cpus)
        self.engine = Engine(model, threads=n_threads, quantization=quantization, vision_cache_mb=vision_cache_mb,
                             packed_cache=packed_cache, seed=0)
        self._die_after = _test_die_after
        self._die_marker = _test_die_marker
        self._batches = 0

    # ---- introspection (also handy as actor methods in benchmarks) ----
    @property
    def threads(self) -> int:
        return self.engine.threads

    def info(self) -> dict:
        return {"pid": os.getpid(), "threads": self.engine.threads, "threads_reason": self.threads_reason,
                "assigned_cpus": self.assigned_cpus, "load_seconds": self.engine.load_seconds,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}

    # ---- the batch ----
    def _image_column(self, columns: Iterable[str]) -> str:
        columns = list(columns)
        if self.image_column is not None:
            if self.image_column not in columns:
                raise KeyError(f"image_column={self.image_column!r} is not a column of the batch ({columns})")
            return self.image_column
        for name in ("image", "bytes"):
            if name in columns:
                return name
        raise KeyError(f"the batch has no 'image' (or 'bytes') column: columns are {columns}; "
                       "pass image_column=")

    def _maybe_die(self) -> None:
        if self._die_after is None or self._batches < self._die_after or not self._die_marker:
            return
        try:
            fd = os.open(self._die_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)

    def predict_rows(self, rows: list[dict], image_column: str) -> list[dict]:
        """Output records for rows (dicts of column values), in order."""
        records: list[Optional[dict]] = [None] * len(rows)
        requests, where = [], []
        for i, row in enumerate(rows):
            try:
                image = _decode_image(row.get(image_column))
                question = _question(row, self.fixed)
                req = {"image": image, "question": question}
                if self.seed is not None:
                    key_value = next((row[c] for c in _KEY_COLUMNS if c in row and not _missing(row[c])), None)
                    req["seed"] = row_seed(self.seed, row_key(image, question, key_value))
                requests.append(req)
                where.append(i)
            except Exception as exc:  # a bad row: its error, the others go on
                records[i] = _error_record(_message(exc))
        if requests:
            results: list[Any]
            try:
                results = self.engine.run_batch(requests, **self.options)
            except Exception:
                # One row broke the batch (the engine rejects it as a whole): run the rows alone to
                # find it. Rows with a seed give the same tokens alone.
                results = []
                for req in requests:
                    try:
                        results.append(self.engine.run_batch([req], **self.options)[0])
                    except Exception as exc:
                        results.append(exc)
            for i, res in zip(where, results):
                try:
                    records[i] = _error_record(_message(res)) if isinstance(res, Exception) else _record(res)
                except Exception as exc:
                    records[i] = _error_record(_message(exc))
        return records  # type: ignore[return-value]

    def __call__(self, batch):
        self._maybe_die()
        is_pandas = type(batch).__module__.startswith("pandas")
        if is_pandas:
            columns = list(batch.columns)
            n = len(batch)
            data = {c: batch[c].tolist() for c in columns}
        elif isinstance(batch, dict):
            columns = list(batch.keys())
            data = batch
            lengths = {len(v) for v in batch.values()}
            if len(lengths) > 1:
                raise ValueError(f"batch columns have different lengths: {sorted(lengths)}")
            n = lengths.pop() if lengths else 0
        else:
            raise TypeError(f"unsupported batch type {type(batch).__name__}: use batch_format='numpy' or 'pandas'")
        image_column = self._image_column(columns)
        rows = [{c: data[c][i] for c in columns} for i in range(n)]
        records = self.predict_rows(rows, image_column)
        self._batches += 1

        out_columns = {}
        for name in OUTPUT_COLUMNS:
            values = [r[name] for r in records]
            if name in ("width", "height"):
                out_columns[name] = np.asarray(values, dtype=np.int64)
            else:
                out_columns[name] = _object_column(values)
        if is_pandas:
            import pandas as pd

            out = batch.copy()
            if not self.keep_image:
                out = out.drop(columns=[image_column])
            for name, col in out_columns.items():
                out[name] = pd.Series(col, index=out.index, dtype=col.dtype)
            return out
        out = {c: batch[c] for c in columns if self.keep_image or c != image_column}
        out.update(out_columns)
        return out


def _actor_pool(concurrency):
    """`ray.data.ActorPoolStrategy` for `concurrency` actors (an int, or (min, max) for an autoscaling pool);
    Ray >= 2.51 deprecates map_batches(concurrency=...) in favour of compute=."""
    from ray.data import ActorPoolStrategy

    if isinstance(concurrency, int):
        return ActorPoolStrategy(size=concurrency)
    lo, hi = concurrency[:2]
    return ActorPoolStrategy(min_size=int(lo), max_size=int(hi))


def predict_dataset(ds, model: Optional[str] = None, *, concurrency: int | tuple = 1,
                    num_cpus_per_actor: Optional[float] = None, batch_size: int = 8, batch_format: str = "numpy",
                    ray_remote_args: Optional[dict] = None, **predictor_kwargs):
    """`ds.map_batches(LocateAnythingPredictor, ...)` with the usual settings: a pool of `concurrency`
    actors (an int, or (min, max) to autoscale), each with `num_cpus_per_actor` CPUs (None = the
    cluster's CPUs less one, left for reading and decoding, shared among the actors, at most one node's
    worth each) and as many engine threads;
    `predictor_kwargs` go to the constructor (quantization, task, categories, phrase, generation
    options, seed, ...); `ray_remote_args` (e.g. {"memory": ...}) go to map_batches. Lazy, as
    map_batches: nothing runs until the result is consumed."""
    if num_cpus_per_actor is None:
        num_cpus_per_actor = _default_cpus_per_actor(concurrency)
    kwargs = dict(ray_remote_args or {})
    return ds.map_batches(LocateAnythingPredictor, fn_constructor_kwargs={"model": model, **predictor_kwargs},
                          compute=_actor_pool(concurrency), num_cpus=num_cpus_per_actor, batch_size=batch_size,
                          batch_format=batch_format, **kwargs)


def _default_cpus_per_actor(concurrency) -> float:
    """The cluster's CPUs less one (left for the read / decode tasks upstream: actors holding every CPU
    would starve them and the pipeline would wait forever), shared among the actors, at most one node's
    worth each."""
    actors = concurrency if isinstance(concurrency, int) else max(concurrency[:2])
    if not ray.is_initialized():
        ray.init()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    per_node = [float(n.get("Resources", {}).get("CPU", 0)) for n in nodes]
    total = sum(per_node)
    if total <= 0 or actors <= 0:
        return 1.0
    share = min((total - 1 if total >= 2 else total / 2) / actors, max(per_node))
    return float(math.floor(share)) if share >= 1 else round(share, 3)
