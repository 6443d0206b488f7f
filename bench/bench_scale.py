"""Scale out on one node: the same N queries through (a) one process with T engine threads and (b) Ray
with k actors × T/k threads each, reporting queries/s, start-up time (ray.init, actor start + model
load) and each actor's PSS (proportional set size: a page shared by n processes counts 1/n in each, so
weights memory-mapped from the packed cache are split between the actors on a node).

    python3 bench/bench_scale.py                                   # tiny test checkpoint, T = 2, k = 1, 2
    python3 bench/bench_scale.py --model /tmp/mid --actors 1,2,4   # 4 actors get T/4 = 0.5 CPU, 1 thread each
    python3 bench/bench_scale.py --model ~/models/LocateAnything-3B -n 32 --threads 16 --actors 1,2,4,8

Queries: one W×H random image (448×448 by default) with N different questions, so rows of one batch
share the image encoding (as `run_batch` does in the serial case). Writes a table and
bench/out/scale-<host>.json (or --out). Needs Ray: pip install locateanything_native[ray].
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import platform
import socket
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_batch import PROMPTS  # noqa: E402  (the same queries as the batch benchmark)


def default_model() -> str:
    fixtures = pathlib.Path(os.environ.get("LA_FIXTURES") or REPO.parent / "shared" / "fixtures")
    return str(fixtures / "tiny-a")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_kb(pid: int) -> dict:
    """Pss, Pss_Anon, Pss_File and Rss of a process in kB (from /proc/<pid>/smaps_rollup)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                out[key] = int(rest.split()[0])
    return out


def questions(n: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" ({i // len(PROMPTS)})") for i in range(n)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=default_model(), help="checkpoint folder (default: the tiny test checkpoint)")
    p.add_argument("--quantization", default="int4")
    p.add_argument("-n", "--queries", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="T: threads of the serial engine and CPUs given to Ray")
    p.add_argument("--actors", default="1,2", help="comma-separated actor counts k (each gets T/k CPUs)")
    p.add_argument("--batch-size", type=int, default=4, help="rows per actor call (and per serial run_batch)")
    p.add_argument("--tokens", type=int, default=32, help="max_new_tokens")
    p.add_argument("--size", default="448x448")
    p.add_argument("--mode", default="hybrid")
    p.add_argument("--repeat", type=int, default=1, help="time each run this many times and keep the fastest "
                   "(steadier on a shared machine)")
    p.add_argument("--no-ray-data", action="store_true", help="skip the end-to-end ray.data pipeline runs")
    p.add_argument("--address", default=None, help="an existing Ray cluster (ray.init(address=...)); default: a local one")
    p.add_argument("--out", default=None, help="JSON path (default bench/out/scale-<host>.json)")
    args = p.parse_args()

    sys.path.insert(0, str(REPO / "python"))
    import locateanything_native as la

    T = args.threads
    ks = [int(k) for k in args.actors.split(",") if k.strip()]
    w, h = (int(v) for v in args.size.split("x"))
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    qs = questions(args.queries)
    opts = dict(generation_mode=args.mode, max_new_tokens=args.tokens)
    batches = [[{"image": image, "question": q} for q in qs[i:i + args.batch_size]]
               for i in range(0, len(qs), args.batch_size)]
    result = {"host": socket.gethostname(), "cpu": cpu_model(), "cpus": os.cpu_count(), "model": args.model,
              "quantization": args.quantization, "queries": args.queries, "size": args.size, "tokens": args.tokens,
              "mode": args.mode, "threads": T, "batch_size": args.batch_size, "repeat": args.repeat,
              "loadavg_start": os.getloadavg(),
              "serial": {}, "ray": []}

    # ---- (a) one process, T threads. Loading first also builds the packed cache the actors then map. ----
    t0 = time.time()
    engine = la.Engine(args.model, threads=T, quantization=args.quantization)
    load_s = time.time() - t0
    engine.run(image, qs[0], **opts)  # warm up
    run_s, batch_s = float("inf"), float("inf")
    for _ in range(args.repeat):
        t0 = time.time()
        serial = [engine.run(image, q, **opts) for q in qs]
        run_s = min(run_s, time.time() - t0)
        t0 = time.time()
        batched = [r for b in batches for r in engine.run_batch(b, **opts)]
        batch_s = min(batch_s, time.time() - t0)
    reference = [r.generated_ids for r in serial]
    serial_answers = [r.answer for r in serial]
    assert reference == [r.generated_ids for r in batched], "run_batch differs from run"
    mem = memory_kb(os.getpid())
    result["serial"] = {"load_s": load_s, "run_s": run_s, "qps": len(qs) / run_s, "run_batch_s": batch_s,
                        "run_batch_qps": len(qs) / batch_s, "pss_mb": mem["Pss"] / 1024, "rss_mb": mem["Rss"] / 1024,
                        "tokens": sum(len(r.generated_ids) for r in serial)}
    print(f"{args.model} ({args.quantization}), {len(qs)} queries on one {args.size} image, "
          f"{args.tokens} tokens max, T={T}, {cpu_model()}")
    print(f"serial   load {load_s:6.2f}s  run {run_s:6.2f}s = {len(qs) / run_s:6.2f} q/s   "
          f"run_batch({args.batch_size}) {batch_s:6.2f}s = {len(qs) / batch_s:6.2f} q/s   PSS {mem['Pss'] / 1024:7.1f} MB")
    del engine, serial, batched
    gc.collect()  # the driver must not hold the cache mapping while actors' PSS is measured

    # ---- (b) Ray: k actors × T/k CPUs ----
    import ray

    from locateanything_native.ray import LocateAnythingPredictor

    os.environ["PYTHONPATH"] = os.pathsep.join(x for x in [str(REPO / "python"), os.environ.get("PYTHONPATH", "")] if x)
    t0 = time.time()
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=T, include_dashboard=False, log_to_driver=False, object_store_memory=512 << 20)
    init_s = time.time() - t0
    result["ray_init_s"] = init_s

    @ray.remote
    class Bare:  # a Ray worker with the package imported and no model: the per-process floor
        def __init__(self):
            import locateanything_native.ray  # noqa: F401

        def memory(self):
            return memory_kb(os.getpid())

    class Predictor(LocateAnythingPredictor):
        def memory(self):  # read in the actor: on a cluster it may be on another node
            return memory_kb(os.getpid())

    Actor = ray.remote(Predictor)
    bare = Bare.options(num_cpus=0).remote()
    result["bare_actor_pss_mb"] = ray.get(bare.memory.remote())["Pss"] / 1024
    ray.kill(bare)
    print(f"ray.init {init_s:.2f}s; a bare actor (package imported, no model): PSS {result['bare_actor_pss_mb']:.1f} MB")

    def to_rows(batch):
        col = np.empty(len(batch), dtype=object)
        for i, r in enumerate(batch):
            col[i] = r["image"]
        return {"image": col, "question": np.array([r["question"] for r in batch], dtype=object)}

    print(f"{'actors':>6} {'cpu/actor':>9} {'threads':>7} {'start s':>8} {'run s':>7} {'q/s':>7} "
          f"{'PSS MB/actor':>13} {'Pss_File':>9} {'Pss_Anon':>9} {'RSS MB':>8}")
    for k in ks:
        cpus = T / k
        t0 = time.time()
        actors = [Actor.options(num_cpus=cpus).remote(args.model, quantization=args.quantization,
                                                      generation_mode=args.mode, max_new_tokens=args.tokens)
                  for _ in range(k)]
        infos = ray.get([a.info.remote() for a in actors])
        start_s = time.time() - t0
        # one warm-up batch each (pages in the weights), then the N queries spread over the actors
        ray.get([a.__call__.remote(to_rows(batches[0][:1])) for a in actors])
        pool = ray.util.ActorPool(actors)
        run_s = float("inf")
        for _ in range(args.repeat):
            t0 = time.time()
            outs = list(pool.map(lambda a, b: a.__call__.remote(to_rows(b)), batches))
            run_s = min(run_s, time.time() - t0)
        answers = [a for o in outs for a in o["answer"]]
        errors = [e for o in outs for e in o["error"] if e]
        mems = ray.get([a.memory.remote() for a in actors])
        row = {"actors": k, "cpus_per_actor": cpus, "threads": [i["threads"] for i in infos], "start_s": start_s,
               "load_s": [i["load_seconds"] for i in infos], "run_s": run_s, "qps": len(qs) / run_s,
               "pss_mb": [m["Pss"] / 1024 for m in mems], "pss_file_mb": [m.get("Pss_File", 0) / 1024 for m in mems],
               "pss_anon_mb": [m.get("Pss_Anon", 0) / 1024 for m in mems], "rss_mb": [m["Rss"] / 1024 for m in mems],
               "errors": errors, "loadavg": os.getloadavg()}
        row["answers_equal_serial"] = answers == serial_answers
        for a in actors:
            ray.kill(a)
        del actors, pool
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        print(f"{k:>6} {cpus:>9.2f} {row['threads'][0]:>7} {start_s:>8.2f} {run_s:>7.2f} {row['qps']:>7.2f} "
              f"{mean(row['pss_mb']):>13.1f} {mean(row['pss_file_mb']):>9.1f} {mean(row['pss_anon_mb']):>9.1f} "
              f"{mean(row['rss_mb']):>8.1f}" + ("" if row["answers_equal_serial"] else "  ANSWERS DIFFER")
              + (f"  ERRORS {errors[:2]}" if errors else ""))
        result["ray"].append(row)
        time.sleep(1.0)  # let the killed actors' CPUs return before the next k

    if not args.no_ray_data:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        result["ray_data"] = []
        for k in ks:
            ds = ray.data.from_items([{"id": i, "image": image, "question": q} for i, q in enumerate(qs)])
            t0 = time.time()
            out = ds.map_batches(LocateAnythingPredictor, compute=ray.data.ActorPoolStrategy(size=k), num_cpus=T / k,
                                 batch_size=args.batch_size,
                                 fn_constructor_kwargs={"model": args.model, "quantization": args.quantization,
                                                        "generation_mode": args.mode, "max_new_tokens": args.tokens}
                                 ).take_all()
            wall = time.time() - t0
            bad = [r["error"] for r in out if r["error"]]
            result["ray_data"].append({"actors": k, "wall_s": wall, "qps_with_startup": len(qs) / wall,
                                       "rows": len(out), "errors": bad})
            print(f"ray.data map_batches, {k} actor(s): {wall:.2f}s end to end incl. actor start "
                  f"= {len(qs) / wall:.2f} q/s" + (f"  ERRORS {bad[:2]}" if bad else ""))
    ray.shutdown()
    result["loadavg_end"] = os.getloadavg()
    out_path = pathlib.Path(args.out) if args.out else HERE / "out" / f"scale-{socket.gethostname()}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
