"""Batch throughput: queries/s and per-query latency of run_batch for batch sizes 1, 2, 4, 8 (different
images) and for one image × 8 prompts, against the same queries run serially in the same process.

    python3 bench/bench_batch.py [--model bench/cache/random-full] [--tokens 32] [--out bench/results/batch.json]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
PROMPTS = ["Locate all the instances that matches the following description: person</c>car.",
           "Point to: the door.", "Detect all the text in box format.",
           "Locate a single instance that matches the following description: a red car.",
           "Locate all the instances that match the following description: windows.",
           "Please locate the text referred as STOP.", "Point to: the traffic light.",
           "Locate the region that matches the following description: the search button."]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(HERE / "cache" / "random-full"))
    p.add_argument("--quantization", default="int4")
    p.add_argument("--size", default="448x448")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mode", default="hybrid")
    p.add_argument("--out", default=str(HERE / "results" / "batch.json"))
    args = p.parse_args()

    import locateanything_native as la

    engine = la.Engine(args.model, threads=args.threads, quantization=args.quantization)
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(8)]
    opts = dict(generation_mode=args.mode, max_new_tokens=args.tokens)
    engine.run(images[0], PROMPTS[1], **opts)  # warm up (page in the weights)

    def measure(name, requests):
        t0 = time.time()
        serial = [engine.run(img, q, **opts) for img, q in requests]
        serial_s = time.time() - t0
        t0 = time.time()
        batch = engine.run_batch(requests, **opts)
        batch_s = time.time() - t0
        same = all(a.generated_ids == b.generated_ids for a, b in zip(serial, batch))
        row = {"name": name, "queries": len(requests), "serial_s": serial_s, "batch_s": batch_s,
               "serial_qps": len(requests) / serial_s, "batch_qps": len(requests) / batch_s,
               "serial_latency_s": serial_s / len(requests), "batch_latency_s": batch_s,
               "speedup": serial_s / batch_s, "tokens_identical": same,
               "images_encoded": sum(r.timings["images_encoded"] for r in batch),
               "shared_prefix_tokens": [r.timings["shared_prefix_tokens"] for r in batch]}
        print(f"{name:22s} n={len(requests)} serial {serial_s:7.1f}s ({row['serial_qps']:.3f} q/s)  "
              f"batch {batch_s:7.1f}s ({row['batch_qps']:.3f} q/s)  x{row['speedup']:.2f}  identical={same}")
        return row

    rows = []
    for n in (1, 2, 4, 8):
        rows.append(measure(f"{n} images", [(images[i], PROMPTS[i % len(PROMPTS)]) for i in range(n)]))
    rows.append(measure("1 image x 8 prompts", [(images[0], q) for q in PROMPTS]))
    out = {"model": args.model, "quantization": args.quantization, "size": args.size, "tokens": args.tokens,
           "mode": args.mode, "threads": args.threads, "rows": rows}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
