"""Running a benchmark JSONL: rows → engine → official records, resumable, in input order.

    from locateanything_native.eval.runner import EvalOptions, evaluate
    summary = evaluate(EvalOptions(test_jsonl_path="COCO.jsonl", save_path="out/eval.jsonl",
                                   model_path="/path/to/LocateAnything-3B", image_root_dir="EvalData"))

Nothing lost, nothing twice:

* Every finished record is appended to a journal, `<save_path>.partial.jsonl`, as
  `{"index": i, "record": {...}}` (i: the row's position among the non-blank lines of the input), then
  flushed and fsync'd. Its first line fingerprints everything that decides the records (input file
  content, model, format, prompts, sampling, seed; for quantised plans also the version of the quantised
  numerics and the CPU's vision attention); a run whose fingerprint differs refuses to mix in
  (`overwrite=True` starts afresh). The journal is locked while a run writes it.
* A re-run reads the journal, cuts off a torn last line (a crash mid-write), and runs only the rows with
  no record yet, plus those whose record is an error (a missing image may have been restored).
* When every row has a record, the final file is written in input order to a temporary file, fsync'd
  and renamed over `save_path`, so it is either the previous file or the complete new one. The journal
  stays: re-running a finished command only rewrites the final file.
* Sampling is reproducible: query k of row i uses the seed derived from (seed, i, k), whatever the
  batching, the number of workers or the resumes.

Throughput: rows go to `Engine.run_batch` in groups (up to `batch_size` queries on up to `batch_images`
distinct images), so the queries of one row (per-category pointing) and consecutive rows on the same
image share the vision encoding and their prompt prefix; each query gives the tokens it gives alone.
`workers=N` runs N engine processes (spawned) after the parent loaded the model once (building the packed
weight cache the workers then map), each with max(1, threads // N) threads.

`run_rows(engine, rows, options)` turns rows into records with no file or process handling (a Ray actor
can call it).
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from typing import BinaryIO, Callable, Optional, cast

from .. import _core
from . import prompts
from .records import FORMATS, Plan, resolve_format

JOURNAL_SUFFIX = ".partial.jsonl"
_JOURNAL_TAG = "locateanything_eval_journal"


@dataclasses.dataclass
class EvalOptions:
    test_jsonl_path: str
    save_path: str
    model_path: Optional[str] = None
    image_root_dir: str = ""
    format: str = "auto"
    eval_type: str = "box_eval"
    generation_mode: str = "hybrid"
    max_new_tokens: int = prompts.DEFAULT_MAX_NEW_TOKENS
    short_side_size: Optional[int] = None
    quantization: str = "int4"
    temperature: float = prompts.DEFAULT_TEMPERATURE
    top_p: float = prompts.DEFAULT_TOP_P
    repetition_penalty: float = prompts.DEFAULT_REPETITION_PENALTY
    seed: int = 0
    threads: int = 0
    workers: int = 1
    limit: Optional[int] = None
    batch_size: int = 8
    batch_images: int = 1
    scores: bool = True
    overwrite: bool = False
    progress: bool = True
    ray: Optional[str] = None  # None: no Ray; "" / "auto": the running cluster or a local one; else its address
    ray_cpus_per_actor: float = 2

    def check(self) -> None:
        if self.eval_type not in prompts.EVAL_TYPES:
            raise ValueError(f"eval_type must be box_eval or point_eval, got {self.eval_type!r}")
        if self.format not in ("auto",) + FORMATS:
            raise ValueError(f"format must be auto, {', '.join(FORMATS)}; got {self.format!r}")
        prompts.build_generate_kwargs(self.generation_mode, self.max_new_tokens)
        if self.short_side_size is not None and int(self.short_side_size) < 1:
            raise ValueError(f"short_side_size must be >= 1, got {self.short_side_size}")
        for name in ("workers", "batch_size", "batch_images"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and int(self.limit) < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    def generate_kwargs(self) -> dict:
        return prompts.build_generate_kwargs(self.generation_mode, self.max_new_tokens, temperature=self.temperature,
                                             top_p=self.top_p, repetition_penalty=self.repetition_penalty)


@dataclasses.dataclass
class EvalSummary:
    save_path: str
    format: str
    rows: int  # records in the final file
    ran: int  # rows processed by this call
    reused: int  # rows taken from the journal
    errors: int
    error_messages: list
    seconds: float


# ---------------------------------------------------------------- input

def read_rows(path: str) -> list[dict]:
    """The non-blank lines of a JSONL file as rows `{"index", "line", "entry"}` (entry: the parsed
    object) or `{"index", "line", "entry": None, "error"}` for a line that is not JSON."""
    rows: list[dict] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            row: dict = {"index": len(rows), "line": line_no, "entry": None}
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as exc:
                row["error"] = f"line {line_no} is not valid JSON: {exc}"
            else:
                if isinstance(entry, dict):
                    row["entry"] = entry
                else:
                    row["error"] = f"line {line_no} is not a JSON object"
            rows.append(row)
    return rows


def _load_image(path: str, short_side_size: Optional[int]):
    """(H×W×3 uint8 array, (w, h) the model sees, scale) as the scripts: Pillow RGB, then optional resize."""
    import numpy as np
    from PIL import Image

    from .parsing import resize_image_short_side

    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad row
        raise ValueError(f"cannot read image {path}: {exc}") from None
    scale = 1.0
    if short_side_size is not None:
        image, scale = resize_image_short_side(image, int(short_side_size))
    return np.asarray(image), image.size, scale


# ---------------------------------------------------------------- rows → records

def run_rows(engine, rows: list[dict], options: EvalOptions, fmt: Optional[str] = None) -> list[dict]:
    """The records of `rows` (from `read_rows`), in order. Bad rows give error records; `engine` is only
    used when some row has a question to ask. No files are written."""
    fmt = fmt or resolve_format(options.format, rows, options.eval_type)
    plans = [Plan(fmt, row, options) for row in rows]
    records: list[Optional[dict]] = [None] * len(plans)
    images: dict[str, tuple] = {}
    bad_images: dict[str, Exception] = {}
    queries = []  # (plan position, query number, image key, question, seed)
    for pos, plan in enumerate(plans):
        if plan.error is not None:
            records[pos] = plan.error_record(plan.error)
            continue
        image_file = plan.image_file
        assert image_file is not None  # Plan sets it whenever the row has no error
        if image_file not in images and image_file not in bad_images:
            try:
                images[image_file] = _load_image(image_file, options.short_side_size)
            except (OSError, ValueError) as exc:
                bad_images[image_file] = exc
        if image_file in bad_images:
            records[pos] = plan.error_record(str(bad_images[image_file]))
            continue
        for k, question in enumerate(plan.questions):
            queries.append((pos, k, image_file, question, prompts.derive_seed(options.seed, plan.index, k)))
    answers: dict[tuple, object] = {}
    failed: dict[int, str] = {}
    kwargs = options.generate_kwargs()
    for chunk in _chunks(queries, options.batch_size, options.batch_images):
        requests = [{"image": images[key][0], "question": q, "seed": seed} for _, _, key, q, seed in chunk]
        try:
            results = engine.run_batch(requests, **kwargs)
        except Exception:  # noqa: BLE001 - find the failing query: run them one by one
            results = []
            for request in requests:
                try:
                    results.append(engine.run_batch([request], **kwargs)[0])
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        for (pos, k, *_), result in zip(chunk, results):
            if isinstance(result, Exception):
                failed.setdefault(pos, f"the engine failed: {type(result).__name__}: {result}")
            answers[(pos, k)] = result
    for pos, plan in enumerate(plans):
        if records[pos] is not None:
            continue
        if pos in failed:
            records[pos] = plan.error_record(failed[pos])
            continue
        assert plan.image_file is not None  # a row without a record yet had no error: its image loaded
        _, size, scale = images[plan.image_file]
        results = [answers[(pos, k)] for k in range(len(plan.questions))]
        try:
            records[pos] = plan.record(results, size, scale, options)
        except Exception as exc:  # noqa: BLE001 - never stop a run for one row
            records[pos] = plan.error_record(f"could not build the record: {type(exc).__name__}: {exc}")
    return cast("list[dict]", records)  # every position is filled by now


def _chunks(queries: list, batch_size: int, batch_images: int):
    chunk: list = []
    keys: set = set()
    for q in queries:
        if chunk and (len(chunk) >= batch_size or (q[2] not in keys and len(keys) >= batch_images)):
            yield chunk
            chunk, keys = [], set()
        chunk.append(q)
        keys.add(q[2])
    if chunk:
        yield chunk


def pack_rows(rows: list[dict], fmt: str, options: EvalOptions) -> list[list[dict]]:
    """Consecutive rows grouped for one engine call each: up to `batch_size` queries on up to
    `batch_images` distinct images (a row with more queries than batch_size forms its own group)."""
    groups: list[list[dict]] = []
    group: list[dict] = []
    n_queries = 0
    keys: set[str] = set()
    for row in rows:
        plan = Plan(fmt, row, options)
        nq = len(plan.questions) if plan.error is None else 0
        key = plan.image_file if nq else None
        new_keys = keys | ({key} if key is not None else set())
        if group and (n_queries + nq > options.batch_size or len(new_keys) > options.batch_images):
            groups.append(group)
            group, n_queries, new_keys = [], 0, ({key} if key is not None else set())
        group.append(row)
        n_queries += nq
        keys = new_keys
    if group:
        groups.append(group)
    return groups


# ---------------------------------------------------------------- journal and final file

class JournalMismatch(RuntimeError):
    pass


class Journal:
    """`<save_path>.partial.jsonl`: a fingerprint line, then one `{"index", "record"}` line per finished row."""

    def __init__(self, path: str, fingerprint: dict):
        self.path = path
        self.fingerprint = fingerprint
        self.records: dict[int, dict] = {}
        self.dropped_tail = 0
        self._file: Optional[BinaryIO] = None

    def open(self, overwrite: bool = False) -> "Journal":
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        f = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise JournalMismatch(f"{self.path} is locked: another run is writing it (same --save_path)") from None
        self._file = f
        data = f.read()
        good_end = data.rfind(b"\n") + 1  # bytes after the last newline are a torn line
        self.dropped_tail = len(data) - good_end
        lines = data[:good_end].splitlines()
        header = None
        if lines and not overwrite:
            try:
                header = json.loads(lines[0])
            except json.JSONDecodeError:
                header = None
            if not isinstance(header, dict) or _JOURNAL_TAG not in header:
                self.close()
                raise JournalMismatch(f"{self.path} is not a journal of this tool: move it away or pass --overwrite")
            if header[_JOURNAL_TAG] != self.fingerprint:
                differ = sorted(k for k in set(self.fingerprint) | set(header[_JOURNAL_TAG])
                                if self.fingerprint.get(k) != header[_JOURNAL_TAG].get(k))
                self.close()
                raise JournalMismatch(
                    f"{self.path} holds records of a different run (differs in: {', '.join(differ)}); pass --overwrite "
                    "to discard it, or choose another --save_path")
            for line in lines[1:]:
                try:
                    item = json.loads(line)
                    self.records[int(item["index"])] = item["record"]
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a damaged line: that row runs again
        if header is None:
            f.seek(0)
            f.truncate()
            f.write((json.dumps({_JOURNAL_TAG: self.fingerprint}, ensure_ascii=False) + "\n").encode("utf-8"))
        else:
            f.seek(good_end)
            f.truncate()
        self._sync()
        return self

    def append(self, pairs) -> None:
        chunks = []
        for index, record in pairs:
            self.records[int(index)] = record
            chunks.append(json.dumps({"index": int(index), "record": record}, ensure_ascii=False) + "\n")
        if chunks:
            self._opened().write("".join(chunks).encode("utf-8"))
            self._sync()

    def _opened(self) -> BinaryIO:
        assert self._file is not None, "the journal is not open"
        return self._file

    def _sync(self) -> None:
        f = self._opened()
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


def write_records(path: str, records) -> None:
    """JSON Lines as the scripts write them, atomically: temp file, fsync, rename, fsync the folder."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def fingerprint(options: EvalOptions, fmt: str, model_path: str) -> dict:
    digest = hashlib.sha256()
    with open(options.test_jsonl_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "version": 1,
        "test_jsonl": os.path.abspath(options.test_jsonl_path),
        "test_jsonl_sha256": digest.hexdigest(),
        "image_root_dir": os.path.abspath(options.image_root_dir) if options.image_root_dir else "",
        "model": os.path.abspath(model_path),
        "quantization": options.quantization,
        "format": fmt,
        "eval_type": options.eval_type,
        "generation_mode": options.generation_mode,
        "max_new_tokens": int(options.max_new_tokens),
        "short_side_size": None if options.short_side_size is None else int(options.short_side_size),
        "temperature": float(options.temperature),
        "top_p": float(options.top_p),
        "repetition_penalty": float(options.repetition_penalty),
        "seed": int(options.seed),
        "scores": bool(options.scores),
        **_numerics(options.quantization),
    }


def _numerics(quantization: str) -> dict:
    """What else decides a quantised plan's records: the version of the quantised products' numerics and
    the vision attention this CPU runs (bf16 units or not). The exact path ("none") depends on neither, so
    its fingerprint, and the journals written before this key existed, stay as they were."""
    if quantization == "none":
        return {}
    k = _core.kernels()
    return {"numerics": {"quant": int(k["quant_numerics"]), "vision_attention": str(k["vision_attention_quantised"])}}


# ---------------------------------------------------------------- progress

class Progress:
    """tqdm when installed (rate and ETA), else a plain stderr line every few seconds."""

    def __init__(self, total: int, initial: int, enabled: bool = True, desc: str = "eval"):
        self.total, self.n, self.enabled = total, initial, enabled
        self.start, self.start_n, self.last_print = time.time(), initial, 0.0
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=initial, desc=desc, unit="row", file=sys.stderr,
                                dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.time() - self.last_print > 5 or self.n >= self.total):
            self._line()

    def _line(self) -> None:
        self.last_print = time.time()
        elapsed = self.last_print - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "?"
        print(f"eval: {self.n}/{self.total} rows, {rate:.2f} rows/s, ETA {eta_text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- worker processes

_PROCESS_STATE: dict = {}


def _init_process(model_path: str, threads: int, quantization: str, options: EvalOptions, fmt: str) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    from ..engine import Engine

    _PROCESS_STATE["engine"] = Engine(model_path, threads=threads, quantization=quantization)
    _PROCESS_STATE["options"] = options
    _PROCESS_STATE["format"] = fmt


def _run_group_in_process(group: list) -> list:
    records = run_rows(_PROCESS_STATE["engine"], group, _PROCESS_STATE["options"], _PROCESS_STATE["format"])
    return [(row["index"], record) for row, record in zip(group, records)]


def _in_thread(fn: Callable, *args):
    """Runs fn in a helper thread so that Ctrl-C reaches the main thread while the engine works."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=target, name="locateanything-eval", daemon=True)
    t.start()
    while t.is_alive():
        t.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _run_serial(groups, model_path, options, fmt, on_done) -> None:
    engine = None
    for group in groups:
        if engine is None and any(Plan(fmt, row, options).error is None for row in group):
            from ..engine import Engine

            engine = _in_thread(Engine, model_path, options.threads, options.quantization)
        records = _in_thread(run_rows, engine, group, options, fmt)
        on_done([(row["index"], record) for row, record in zip(group, records)])


def _run_pool(groups, model_path, options, fmt, on_done) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from ..engine import Engine

    n = min(int(options.workers), len(groups))
    total_threads = int(options.threads) or _core.default_thread_budget()[0]
    per_worker = max(1, total_threads // n)
    # Load once here: a quantised load writes the packed weight cache that every worker then maps.
    first = _in_thread(Engine, model_path, 1, options.quantization)
    del first
    executor = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_process,
                                   initargs=(model_path, per_worker, options.quantization, options, fmt))
    pending = iter(groups)
    in_flight: set[Future] = set()
    try:
        def refill():
            while len(in_flight) < 2 * n:
                group = next(pending, None)
                if group is None:
                    return
                in_flight.add(executor.submit(_run_group_in_process, group))

        refill()
        while in_flight:
            done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                in_flight.discard(fut)
                on_done(fut.result())
            refill()
    except BaseException:
        for proc in list(getattr(executor, "_processes", {}).values()):
            proc.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _run_group_on_engine(engine, payload) -> list:
    group, options, fmt = payload
    records = run_rows(engine, group, options, fmt)
    return [(row["index"], record) for row, record in zip(group, records)]


def _run_ray(groups, model_path, options, fmt, on_done) -> None:
    """Groups over engine actors of a Ray cluster (locateanything_native.cluster); results come back to
    this process, which alone writes the journal, so resume, order and error records are the same as
    without Ray. A killed actor is restarted and its group retried by Ray; each group is recorded once."""
    from ..cluster import EnginePool

    pool = EnginePool(model_path, options.quantization, options.ray, actors=int(options.workers) if int(options.workers) > 1 else 0,
                      cpus_per_actor=float(options.ray_cpus_per_actor))
    try:
        for _, pairs in pool.imap_unordered(_run_group_on_engine, ((g, options, fmt) for g in groups)):
            on_done(pairs)
    finally:
        pool.close()


# ---------------------------------------------------------------- the whole run

def evaluate(options: EvalOptions, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> EvalSummary:
    """Runs (or resumes) the benchmark and writes `options.save_path`; see the module docstring."""
    from ..models import find_model

    options.check()
    start = time.time()
    rows = read_rows(options.test_jsonl_path)
    fmt = resolve_format(options.format, rows, options.eval_type)
    targets = rows if options.limit is None else rows[: int(options.limit)]
    model_path = find_model(options.model_path)
    journal = Journal(options.save_path + JOURNAL_SUFFIX, fingerprint(options, fmt, model_path))
    journal.open(overwrite=options.overwrite)
    try:
        if journal.dropped_tail:
            log(f"eval: dropped a torn last line ({journal.dropped_tail} bytes) from {journal.path}")
        pending = [r for r in targets if r["index"] not in journal.records or "error" in journal.records[r["index"]]]
        reused = len(targets) - len(pending)
        log(f"eval: {len(targets)} rows ({fmt} format, {options.eval_type}), {reused} already done, "
            f"{len(pending)} to run; journal {journal.path}")
        progress = Progress(len(targets), reused, options.progress)

        def on_done(pairs):
            journal.append(pairs)
            progress.update(len(pairs))

        try:
            groups = pack_rows(pending, fmt, options)
            if groups:
                if options.ray is not None:
                    _run_ray(groups, model_path, options, fmt, on_done)
                elif int(options.workers) > 1 and len(groups) > 1:
                    _run_pool(groups, model_path, options, fmt, on_done)
                else:
                    _run_serial(groups, model_path, options, fmt, on_done)
        finally:
            progress.close()
        final = [journal.records[r["index"]] for r in targets]
        write_records(options.save_path, final)
    finally:
        journal.close()
    errors = [rec["error"] for rec in final if "error" in rec]
    return EvalSummary(options.save_path, fmt, len(final), len(pending), reused, len(errors), errors,
                       time.time() - start)
