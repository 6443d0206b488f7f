"""The engine front end: model discovery, image conversion and task helpers over the C++ core."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Optional, Sequence, cast

import numpy as np

from . import _core
from .images import to_array
from .models import find_model
from .prompts import question

log = logging.getLogger("locateanything_native")

# Decoding defaults of the reference generate(), from their one home (GenerationOptions in the core).
DEFAULTS = _core.GENERATION_DEFAULTS

# A load reports stage, fraction and message; see Engine(progress=...).
ProgressFn = Callable[[str, float, str], None]


def stream_seed(seed: int, row: int = 0) -> int:
    """The sampling-stream seed of row `row` of a call made with `seed=`: independent streams per
    (seed, row), the same on every machine (numpy's SeedSequence)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(np.random.SeedSequence([int(seed), int(row)]).generate_state(1, np.uint64)[0])


class SeedStream:
    """The generator behind sampling, as numpy and torch users know it: seeded once (constructor
    `seed=`), it advances with every call, so repeated calls on the same input draw different
    samples while a fresh process with the same seed repeats the same sequence of calls. A call
    with its own `seed=` uses that seed's streams and leaves the running generator untouched.
    Thread-safe."""

    def __init__(self, seed: Optional[int] = 0):
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(None if seed is None else stream_seed(seed, 0))

    def seeds(self, n: int, seed: Optional[int] = None) -> list[int]:
        """Stream seeds for `n` rows: from `seed` when given (row i → stream_seed(seed, i)), else the
        next `n` draws of the running generator."""
        if seed is not None:
            return [stream_seed(seed, i) for i in range(n)]
        with self._lock:
            return [int(v) for v in self._rng.integers(0, 2**63, size=n, dtype=np.uint64)]


def _progress_logger(callback: Optional[ProgressFn]) -> ProgressFn:
    """Sends load progress to the `locateanything_native` logger (INFO, one line per stage) and to
    the user's callback when given."""

    def report(stage: str, fraction: float, message: str) -> None:
        if message:
            (log.warning if stage == "warning" else log.info)("%s", message)
        if callback is not None:
            callback(stage, fraction, message)

    return report


def _check_question(question, where: str = "question") -> str:
    if not isinstance(question, str):
        raise ValueError(f"{where} must be a str, got {type(question).__name__}")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} is not valid Unicode text ({exc.reason} at position {exc.start}); "
                         "pass a normal str (decode bytes with .decode('utf-8', 'replace'))") from None
    return question


class Engine:
    """A loaded checkpoint. Load once, run many queries (thread-safe; calls are serialised).

    `quantization`: "int4" (default: decoder linears in INT4 blocks of 32 with INT8 activations, INT4
    embedding table, INT8 output head, vision tower linears in INT8), "int4-b128", "int8", or "none"
    (float32 compute from the checkpoint's weights: the path that reproduces the official float32
    outputs token for token).
    Quantised loads write a packed cache (`packed_cache`: True = the user cache dir, False = never,
    or a file path) so later loads map it with no conversion.

    Decoding defaults are those of the reference `generate()`: hybrid mode, greedy (temperature 0),
    no top-p/top-k, no repetition penalty. The official worker's sampling defaults live in
    `LocateAnythingWorker`.

    Sampling (temperature > 0) draws from a generator seeded once here (`seed=`, default 0; None =
    fresh OS entropy) that advances with every call: repeated calls differ, a new engine with the same
    seed repeats the same sequence. `seed=` on a call fixes that call alone; the rows of one batch draw
    from independent streams (see `SeedStream`).

    `threads=0` takes the CPUs this process may use (affinity mask, cgroup quota), capped by
    LOCATEANYTHING_THREADS or OMP_NUM_THREADS; `engine.threads_source` says which decided.
    `progress(stage, fraction, message)` hears what the load is doing (building the packed cache
    once, ...); the same messages go to the `locateanything_native` logger at INFO.
    `revision` picks the Hugging Face revision when `model` is a repo id.
    """

    def __init__(self, model: str | None = None, threads: int = 0, quantization: str = "int4",
                 vision_cache_mb: float = 0, packed_cache: str | bool = True, *, seed: Optional[int] = 0,
                 revision: Optional[str] = None, progress: Optional[ProgressFn] = None):
        self.model_path = find_model(model, revision=revision)
        cache = "" if packed_cache is True else "off" if packed_cache is False else str(packed_cache)
        self.seeds = SeedStream(seed)
        self.core = _core.Engine(self.model_path, threads=threads, quantization=quantization,
                                 vision_cache_bytes=int(vision_cache_mb * (1 << 20)), packed_cache=cache,
                                 progress=_progress_logger(progress))

    # ---- whole pipeline ----
    def run(
        self,
        image,
        question: str,
        *,
        visual_prompts: Sequence = (),
        generation_mode: str = DEFAULTS["generation_mode"],
        max_new_tokens: int = DEFAULTS["max_new_tokens"],
        temperature: float = DEFAULTS["temperature"],
        top_p: float = DEFAULTS["top_p"],
        top_k: int = DEFAULTS["top_k"],
        repetition_penalty: float = DEFAULTS["repetition_penalty"],
        seed: Optional[int] = None,
        loop_guard: bool = DEFAULTS["loop_guard"],
        record_steps: bool = False,
        chat_template: str = "worker",
    ) -> _core.Result:
        _check_question(question)
        images = [to_array(image)] + [to_array(v) for v in visual_prompts]
        stream = self.seeds.seeds(1, seed)[0]
        return self.core.run(
            images,
            question,
            generation_mode=generation_mode,
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            repetition_penalty=float(repetition_penalty),
            seed=stream,
            loop_guard=bool(loop_guard),
            record_steps=bool(record_steps),
            chat_template=chat_template,
        )

    def run_batch(self, requests: Sequence, *, seed: Optional[int] = None, **options) -> list[_core.Result]:
        """Runs many requests together; each row gives the same tokens as `run` alone (with the same seed).

        A request is `(image, question)`, `(image, question, visual_prompts)` or a dict with "image",
        "question" and optionally "visual_prompts" and per-row overrides of the keyword options
        (generation_mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed, loop_guard).
        The same image (by content) is encoded once; rows sharing an image share the KV cache of their
        common prompt prefix; every decode step runs all active rows in one pass over the weights.
        Sampling: row i draws from its own stream: `seed=` given → `stream_seed(seed, i)`, else the
        engine's running generator; a row's own "seed" fixes that row as `run(..., seed=...)` would.
        """
        rows = []
        for i, req in enumerate(requests):
            if isinstance(req, dict):
                row = {k: v for k, v in req.items() if k not in ("image", "visual_prompts")}
                image, prompts = req["image"], req.get("visual_prompts", ())
            elif isinstance(req, (tuple, list)) and len(req) in (2, 3):
                image, question = req[0], req[1]
                prompts = req[2] if len(req) == 3 else ()
                row = {"question": question}
            else:
                raise ValueError(f"request {i}: pass (image, question), (image, question, visual_prompts) or a dict")
            _check_question(row.get("question"), f"request {i}: question")
            row["images"] = [to_array(image)] + [to_array(v) for v in prompts]
            rows.append(row)
        streams = self.seeds.seeds(len(rows), seed)
        for row, stream in zip(rows, streams):
            row["seed"] = stream if row.get("seed") is None else self.seeds.seeds(1, row["seed"])[0]
        return self.core.run_batch(rows, **options)

    def set_vision_cache(self, megabytes: float) -> None:
        """Keeps image encodings across calls, up to `megabytes` of features (0 = off)."""
        self.core.set_vision_cache(int(megabytes * (1 << 20)))

    # ---- tasks (the official worker's prompts, from prompts.question) ----
    def ask(self, image, task: str, arg=None, **kw) -> _core.Result:
        """Runs `task` (detect, ground_single, ..., see prompts.TASKS) with its categories or phrase."""
        return self.run(image, question(task, arg), **kw)

    def detect(self, image, categories: Iterable[str] | str, **kw) -> _core.Result:
        return self.ask(image, "detect", categories, **kw)

    def ground_single(self, image, phrase: str, **kw) -> _core.Result:
        return self.ask(image, "ground_single", phrase, **kw)

    def ground_multi(self, image, phrase: str, **kw) -> _core.Result:
        return self.ask(image, "ground_multi", phrase, **kw)

    def ground_text(self, image, phrase: str, **kw) -> _core.Result:
        return self.ask(image, "ground_text", phrase, **kw)

    def detect_text(self, image, **kw) -> _core.Result:
        return self.ask(image, "detect_text", **kw)

    def ground_gui(self, image, phrase: str, output_type: str = "box", **kw) -> _core.Result:
        return self.ask(image, "ground_gui_point" if output_type == "point" else "ground_gui", phrase, **kw)

    def point(self, image, phrase: str, **kw) -> _core.Result:
        return self.ask(image, "point", phrase, **kw)

    # ---- stages, for parity work and notebooks ----
    def preprocess(self, image) -> tuple[np.ndarray, tuple[int, int]]:
        """pixel_values [N, 3, 14, 14] float32 and the patch grid (h, w), as the official processor."""
        return self.core.preprocess(to_array(image))

    def vision_features(self, pixel_values: np.ndarray, grid: tuple[int, int], project: bool = False) -> np.ndarray:
        """Vision tower output after the 2x2 merge, or after mlp1 with project=True."""
        return self.core.vision_features(pixel_values, cast("tuple[int, int]", tuple(grid)), project)

    def project(self, merged: np.ndarray) -> np.ndarray:
        return self.core.project(merged)

    def prompt_ids(self, question: str, image_tokens: Sequence[int], chat_template: str = "worker") -> list[int]:
        return self.core.prompt_ids(question, list(image_tokens), chat_template)

    def prefill_logits(self, input_ids: Sequence[int], image_rows: np.ndarray | None = None, last_n: int = 1) -> np.ndarray:
        return self.core.prefill_logits(list(input_ids), image_rows, last_n)

    def encode(self, text: str) -> list[int]:
        return self.core.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.core.decode(list(ids))

    @property
    def threads(self) -> int:
        return self.core.threads

    @property
    def threads_source(self) -> str:
        """What decided `threads`: the argument, the affinity mask, the cgroup quota or an environment variable."""
        return self.core.threads_source

    @property
    def load_seconds(self) -> float:
        return self.core.load_seconds

    @property
    def image_token_id(self) -> int:
        """Id of <IMG_CONTEXT> (read from the checkpoint, checked against the tokenizer)."""
        return self.core.image_token_id

    @property
    def vocab_size(self) -> int:
        return self.core.vocab_size

    def __repr__(self) -> str:
        return (f"<locateanything_native.Engine model='{self.model_path}' threads={self.threads} "
                f"({self.threads_source}) isa={_core.isa()}>")


def load(model: str | None = None, threads: int = 0, quantization: str = "int4", vision_cache_mb: float = 0,
         packed_cache: str | bool = True, **kwargs) -> Engine:
    """Loads a checkpoint folder (or finds one: $LOCATEANYTHING_MODEL, then the Hugging Face cache).
    Keyword options as `Engine` (seed, revision, progress)."""
    return Engine(model, threads=threads, quantization=quantization, vision_cache_mb=vision_cache_mb,
                  packed_cache=packed_cache, **kwargs)


def prepare(model: str | None = None, quantization: str = "int4", *, revision: Optional[str] = None,
            progress: Optional[ProgressFn] = None) -> str:
    """Builds the packed weight cache of `model` for `quantization` once (or finds it built) and
    returns its path: run it on each node before a job so every process there only maps the file.
    The cache goes where engines look for it ($LOCATEANYTHING_CACHE, else ~/.cache/locateanything_native);
    put $LOCATEANYTHING_CACHE on a shared volume to build it once for many nodes."""
    engine = Engine(model, threads=0, quantization=quantization, packed_cache=True, revision=revision,
                    progress=progress)
    path = engine.core.packed_cache_file
    if not path:
        if engine.core.quantization == "float":
            raise ValueError(f"quantization={quantization!r} keeps the checkpoint's float weights: there is no packed "
                             "cache to prepare (use int4, int8, int4-b128, ...)")
        raise RuntimeError("no packed cache could be written: " + "; ".join(engine.core.notes))
    return path
