r"""End-to-end benchmark: per-stage times of locateanything_native on full-size random weights, over
image sizes × generation modes × quantisations, with ratios to this machine's physical limits and to
baselines measured on the same machine (our float32 path always; the official PyTorch code and the
strongest C++ peer when their results are passed in, or, for the official code, run here).

    python3 bench/make_random_checkpoint.py                       # once: bench/cache/random-full
    python3 bench/bench_e2e.py --out bench/results/this-machine.json \
        [--reference bench/results/reference-448.json ...] [--peer bench/results/peer-448.json ...]
    python3 bench/bench_e2e.py --out bench/results/this-machine.json \
        --reference-dtype float32,bfloat16 --eagle /path/to/NVlabs-Eagle [--reference-modes slow]

--reference-dtype runs the official PyTorch code (bench/reference_baseline.py, with the Eagle checkout
given by --eagle) once per dtype × size × reference mode, on the same checkpoint, image (--image-dir, else
noise), prompt, token budget and threads, and adds its results exactly as --reference FILE does. The
reference modes are --reference-modes, by default slow plus every mode in --modes; each reference run is
timed once (it reloads the model), ours keep the best of --repeats. Ratios are reference / ours (>1: ours
is faster or smaller), end to end per reference (vs_reference_<dtype>_<mode>) and per stage (vision,
prefill, decode per committed token, end to end, load, peak RSS) against each dtype's run in the same
mode, or its slow run when that mode was not run. A reference result without a "dtype" field (files
from before reference_baseline.py had --dtype) is float32.

Each quantisation and each reference run in its own process so that load time and peak RSS are its own.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import re
import resource
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
# The peer benchmark's prompt: "Locate all the instances that matches the following description: cat</c>remote."
CATEGORIES = ["cat", "remote"]
MODES = ("slow", "fast", "hybrid")
REFERENCE_DTYPES = ("float32", "bfloat16")


def image_path(image_dir: str | None, size: str) -> pathlib.Path | None:
    """The peer benchmark's synthetic image for `size` in `image_dir`, if there is one."""
    name = "img448.png" if size == "448x448" else f"img{size}.png"
    path = pathlib.Path(image_dir or "/nonexistent") / name
    return path if path.is_file() else None


# (vendor, family) → [(first model, last model, core)]; the model name of a VM often says only "AMD EPYC".
CORES = {
    ("AuthenticAMD", 25): [(0x00, 0x0F, "Zen 3"), (0x10, 0x1F, "Zen 4"), (0x20, 0x5F, "Zen 3"),
                           (0x60, 0x7F, "Zen 4"), (0xA0, 0xAF, "Zen 4c")],
    ("AuthenticAMD", 26): [(0x00, 0xFF, "Zen 5")],
    ("GenuineIntel", 6): [(0x55, 0x55, "Skylake/Cascade Lake"), (0x6A, 0x6C, "Ice Lake"),
                          (0x8F, 0x8F, "Sapphire Rapids"), (0xCF, 0xCF, "Emerald Rapids"), (0xAD, 0xAE, "Granite Rapids")],
}


def machine() -> dict:
    info: dict = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    fields: dict = {}
    try:
        for line in open("/proc/cpuinfo"):
            if not line.strip():
                break  # the first processor is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        return info
    info["cpu"] = fields.get("model name", "")
    vendor = fields.get("vendor_id", "")
    try:
        family, model = int(fields.get("cpu family", "")), int(fields.get("model", ""))
    except ValueError:
        return info
    info.update(vendor=vendor, family=family, model=model, stepping=fields.get("stepping", ""))
    info["core"] = next((name for lo, hi, name in CORES.get((vendor, family), []) if lo <= model <= hi), "unknown")
    flags = fields.get("flags", "").split()
    info["isa_flags"] = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "f16c")]
    return info


def probe(build_dir: pathlib.Path) -> dict:
    exe = build_dir / "bench" / "la_probe"
    if not exe.exists():
        subprocess.run(["cmake", "-S", str(REPO), "-B", str(build_dir), "-G", "Ninja", "-DLA_BUILD_BENCH=ON",
                        "-DLA_BUILD_TESTS=OFF", "-DLA_BUILD_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", "la_probe"], check=True,
                       stdout=subprocess.DEVNULL)
    return json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


# ---- FLOP counts (multiply-add = 2) ----
def vision_flops(cfg: dict, grid_h: int, grid_w: int) -> float:
    v = cfg["vision_config"]
    H, F, layers, p = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v.get("patch_size", 14)
    L = grid_h * grid_w
    per_layer = 2 * L * (3 * H * H + H * H + 2 * H * F) + 4 * L * L * H
    return 2 * L * 3 * p * p * H + layers * per_layer


def decoder_flops(cfg: dict, rows: int, keys: int, logit_rows: int) -> float:
    t = cfg["text_config"]
    H, F, layers, heads, kv = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], \
        t["num_attention_heads"], t["num_key_value_heads"]
    D = H // heads
    linear = 2 * rows * (H * heads * D + 2 * H * kv * D + heads * D * H + 3 * H * F)
    attention = 4 * rows * keys * heads * D
    return layers * (linear + attention) + 2 * logit_rows * H * t["vocab_size"]


def child(spec: dict) -> dict:
    import numpy as np

    import locateanything_native as la

    t0 = time.time()
    engine = la.Engine(spec["model"], threads=spec["threads"], quantization=spec["quantization"])
    load_s = time.time() - t0
    memory = engine.core.memory_report()
    rng = np.random.default_rng(0)
    runs = []
    warm = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    engine.detect(warm, CATEGORIES, generation_mode="slow", max_new_tokens=2)  # page in the weights
    for size in spec["sizes"]:
        w, h = (int(v) for v in size.split("x"))
        # The peer benchmark's synthetic images when given (same pixels for both engines), else noise.
        path = image_path(spec["image_dir"], size)
        if path is not None:
            from PIL import Image

            img = np.asarray(Image.open(path).convert("RGB"))
        else:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for mode in spec["modes"]:
            # Best of `repeats` by end-to-end time: other tenants of a shared machine only ever add time.
            r = min((engine.detect(img, CATEGORIES, generation_mode=mode, max_new_tokens=spec["tokens"])
                     for _ in range(spec["repeats"])), key=lambda res: res.timings["total"])
            steps = r.step_times  # (rows, is_mtp, seconds, committed)
            decode_steps = steps[1:]
            ar = [s[2] for s in decode_steps if not s[1]]
            mtp = [s[2] for s in decode_steps if s[1]]
            after_first = sum(s[3] for s in decode_steps)
            runs.append({
                "size": size, "mode": mode, "timings": r.timings, "answer_tokens": len(r.generated_ids),
                "forward_calls": r.forward_calls, "stop_reason": r.stop_reason,
                "prefill_rows": steps[0][0] if steps else 0,
                "ar_step_s": sum(ar) / len(ar) if ar else None,
                "mtp_step_s": sum(mtp) / len(mtp) if mtp else None,
                "mtp_rows": [s[0] for s in decode_steps if s[1]][:8],
                "tokens_per_mtp_step": (sum(s[3] for s in decode_steps if s[1]) / len(mtp)) if mtp else None,
                # Decode cost per committed token after the prefill pass (which commits its own tokens).
                "decode_per_token_s": r.timings["decode"] / max(1, after_first),
                "end_to_end_s": r.timings["total"],
            })
    return {"quantization": spec["quantization"], "tag": engine.core.quantization, "load_s": load_s,
            "memory": memory, "runs": runs, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(HERE / "cache" / "random-full"))
    p.add_argument("--sizes", default="448x448,640x360")
    p.add_argument("--modes", default="slow,fast,hybrid")
    p.add_argument("--quantizations", default="int4,none")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=2, help="runs per (size, mode); the fastest is kept")
    p.add_argument("--reference", action="append", default=[], help="JSON from reference_baseline.py")
    p.add_argument("--reference-dtype", default="",
                   help="comma list of float32,bfloat16: run the official PyTorch code in each (needs --eagle)")
    p.add_argument("--reference-modes",
                   help="modes of the --reference-dtype runs, comma list (default: slow plus --modes)")
    p.add_argument("--eagle", help="root of an NVlabs/Eagle checkout, for --reference-dtype")
    p.add_argument("--peer", action="append", default=[], help="JSON from ../shared/peer-bench/run_bench.sh")
    p.add_argument("--image-dir", help="folder with img448.png / img640x360.png (../shared/peer-bench/make_images.py)")
    p.add_argument("--probe-build", default=str(REPO / "build-bench"))
    p.add_argument("--out", default=str(HERE / "results" / f"{platform.node() or 'machine'}.json"))
    p.add_argument("--show", help="print the table of an earlier results JSON and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.show:
        results = json.loads(pathlib.Path(args.show).read_text())
        add_ratios(results)
        print_table(results)
        return 0
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    ref_dtypes, ref_modes = reference_plan(p, args)

    cfg = json.loads((pathlib.Path(args.model) / "config.json").read_text())
    import locateanything_native  # sets OPENBLAS_CORETYPE, which the probe inherits

    limits = probe(pathlib.Path(args.probe_build))
    all_threads = limits[f"threads_{limits['hardware_threads']}"]
    lim = limits.get(f"threads_{args.threads}", all_threads)
    results = {"machine": machine(), "kernels": locateanything_native._core.kernels(),
               "threads": args.threads, "tokens": args.tokens, "repeats": args.repeats,
               "probe": limits, "engines": []}
    for q in args.quantizations.split(","):
        spec = {"model": args.model, "threads": args.threads, "quantization": q, "sizes": args.sizes.split(","),
                "modes": args.modes.split(","), "tokens": args.tokens, "image_dir": args.image_dir,
                "repeats": max(1, args.repeats)}
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True, capture_output=True,
                             text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        for run in res["runs"]:
            w, h = (int(v) for v in run["size"].split("x"))
            gh, gw = (h + 27) // 28 * 2, (w + 27) // 28 * 2
            t = run["timings"]
            run["vision_gflops"] = vision_flops(cfg, gh, gw) / 1e9
            # Quantised plans run the tower's linears (~87 % of its FLOPs at 448×448) on the int8 units.
            vision_peak = lim["int8_peak_GOPs"] if q != "none" else lim["fp32_peak_GFLOPs"]
            run["vision_fraction_of_peak"] = run["vision_gflops"] / t["vision"] / vision_peak
            pf = decoder_flops(cfg, run["prefill_rows"], run["prefill_rows"], 6 if run["mode"] != "slow" else 1) / 1e9
            peak = lim["int8_peak_GOPs"] if q != "none" else lim["fp32_peak_GFLOPs"]
            run["prefill_gflops"] = pf
            run["prefill_fraction_of_peak"] = pf / t["prefill"] / peak
            if run["ar_step_s"]:
                limit_s = res["memory"]["decode_streamed_per_step"] / (lim["read_GBps"] * 1e9)
                run["decode_step_bandwidth_limit_s"] = limit_s
                run["decode_step_fraction_of_bandwidth"] = limit_s / run["ar_step_s"]
        results["engines"].append(res)
    for f in args.reference:
        results.setdefault("reference", []).append(json.loads(pathlib.Path(f).read_text()))
    failed = []
    for dtype in ref_dtypes:
        for size in args.sizes.split(","):
            for mode in ref_modes:
                ref = run_reference(args, dtype, size, mode)
                if "error" in ref:
                    failed.append(ref)
                else:
                    results.setdefault("reference", []).append(ref)
    if failed:
        results["reference_failed"] = failed
    for f in args.peer:
        results.setdefault("peer", []).append(json.loads(pathlib.Path(f).read_text()))
    add_ratios(results)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


def reference_plan(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The dtypes and modes --reference-dtype asks the official code to run in; errors out early (before
    our own runs) when they cannot run."""
    dtypes = [d.strip() for d in args.reference_dtype.split(",") if d.strip()]
    if not dtypes:
        if args.eagle or args.reference_modes:
            print("note: --eagle / --reference-modes are only used with --reference-dtype", file=sys.stderr)
        return [], []
    bad = [d for d in dtypes if d not in REFERENCE_DTYPES]
    if bad:
        p.error(f"--reference-dtype: unknown dtype {', '.join(bad)} (choose from {', '.join(REFERENCE_DTYPES)})")
    if not args.eagle:
        p.error("--reference-dtype needs --eagle PATH, the root of an NVlabs/Eagle checkout "
                "(its Embodied/ folder holds the official worker and the model's remote code)")
    worker = pathlib.Path(args.eagle) / "Embodied" / "locateanything_worker.py"
    if not worker.is_file():
        p.error(f"--eagle {args.eagle}: {worker} not found; pass the root of an NVlabs/Eagle checkout")
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        p.error(f"--reference-dtype needs {' and '.join(missing)} in this Python (see bench/README.md)")
    requested = [m for m in args.modes.split(",") if m]
    modes = [m.strip() for m in args.reference_modes.split(",") if m.strip()] if args.reference_modes \
        else ["slow"] + [m for m in requested if m != "slow"]
    bad = [m for m in modes if m not in MODES]
    if bad:
        p.error(f"--reference-modes: unknown mode {', '.join(bad)} (choose from {', '.join(MODES)})")
    return list(dict.fromkeys(dtypes)), list(dict.fromkeys(modes))


def run_reference(args: argparse.Namespace, dtype: str, size: str, mode: str) -> dict:
    """One run of the official PyTorch code (bench/reference_baseline.py) in its own process, on the same
    checkpoint, image, prompt, token budget and threads as ours. Returns its JSON, or a record of the
    failure (with "error") so that the other runs still go ahead."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="la_bench_reference_") as tmp:
        out = pathlib.Path(tmp) / "reference.json"
        cmd = [sys.executable, str(HERE / "reference_baseline.py"), "--eagle", args.eagle, "--model", args.model,
               "--size", size, "--tokens", str(args.tokens), "--mode", mode, "--threads", str(args.threads),
               "--dtype", dtype, "--categories", ",".join(CATEGORIES), "--out", str(out)]
        img = image_path(args.image_dir, size)
        if img is not None:
            cmd += ["--image", str(img)]
        print(f"reference: official PyTorch, {dtype}, {size}, {mode} ...", file=sys.stderr, flush=True)
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0 and out.is_file():
            res = json.loads(out.read_text())
            print(f"reference: done in {time.time() - t0:.1f}s", file=sys.stderr, flush=True)
            return res
    why = f"exit {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
    if proc.returncode == -9:
        why += " (out of memory?)"
    tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-20:])
    print(f"reference {dtype} {size} {mode} failed ({why}):\n{tail}", file=sys.stderr, flush=True)
    return {"dtype": dtype, "size": size, "mode": mode, "error": why, "output_tail": tail}


def baseline_size(entry: dict) -> str | None:
    """The image size a reference / peer result was measured at, as W×H."""
    if "size" in entry:
        return entry["size"]
    m = re.search(r"img(\d+)(?:x(\d+))?\.", entry.get("image", ""))
    return f"{m.group(1)}x{m.group(2) or m.group(1)}" if m else None


def reference_dtype(ref: dict) -> str:
    """The dtype a reference result ran in; files from before reference_baseline.py had --dtype were float32
    (their "engine" string says so)."""
    return ref.get("dtype", "float32")


def ratio(reference: float | None, ours: float | None) -> float | None:
    return reference / ours if reference is not None and ours else None


def reference_stages(eng: dict, run: dict, ref: dict) -> dict:
    """Per-stage ratios reference / ours (>1: ours is faster, or for peak RSS smaller)."""
    t = run["timings"]
    return {
        "vision": ratio(ref["vision_s"], t["vision"]),
        "prefill": ratio(ref["prefill_s"], t["prefill"]),
        "decode_per_token": ratio(ref["decode_per_token_s"], run["decode_per_token_s"]),
        "end_to_end": ratio(ref["end_to_end_s"], run["end_to_end_s"]),
        "load": ratio(ref.get("load_s"), eng["load_s"]),
        "peak_rss": ratio(ref.get("peak_rss_gb"), eng["peak_rss_gb"]),
    }


def add_ratios(results: dict) -> None:
    """Speed-ups of each run over the baselines at the same image size (>1: ours is faster):
    our float32 path (same mode), the official PyTorch code (each of its dtype × mode runs, keyed
    vs_reference_<dtype>_<mode>), the peer (its pipeline estimate for the same mode). Per-stage ratios
    against the official code go to "reference_stages", one entry per dtype: its run in the same mode,
    else its slow run."""
    fp32 = {(r["size"], r["mode"]): r["end_to_end_s"] for e in results["engines"] if e["quantization"] == "none"
            for r in e["runs"]}
    for eng in results["engines"]:
        for r in eng["runs"]:
            ratios = {}
            if eng["quantization"] != "none" and (r["size"], r["mode"]) in fp32:
                ratios["vs_own_fp32"] = fp32[(r["size"], r["mode"])] / r["end_to_end_s"]
            refs = [ref for ref in results.get("reference", []) if baseline_size(ref) == r["size"]]
            for ref in refs:
                ratios[f"vs_reference_{reference_dtype(ref)}_{ref['mode']}"] = ref["end_to_end_s"] / r["end_to_end_s"]
            stages = {}
            for dtype in dict.fromkeys(reference_dtype(ref) for ref in refs):
                same = [ref for ref in refs if reference_dtype(ref) == dtype and ref["mode"] == r["mode"]] or \
                    [ref for ref in refs if reference_dtype(ref) == dtype and ref["mode"] == "slow"]
                if same:
                    stages[f"{dtype}_{same[-1]['mode']}"] = reference_stages(eng, r, same[-1])
            r["reference_stages"] = stages
            for peer in results.get("peer", []):
                est = peer.get("pipeline_est_s", {}).get(r["mode"])
                if est and baseline_size(peer) == r["size"]:
                    ratios["vs_peer"] = est / r["end_to_end_s"]
            r["speedup"] = ratios


def print_table(results: dict) -> None:
    m = results.get("machine", {})
    if "core" in m:
        print(f"machine: {m.get('cpu')} ({m['vendor']} family {m['family']} model {m['model']}: {m['core']}), "
              f"{m.get('cpus')} CPUs, {' '.join(f for f in m.get('isa_flags', []) if f.startswith('amx')) or 'no AMX'}")
    print(f"threads={results['threads']} tokens={results['tokens']} probe={results['probe']}")
    if "kernels" in results:
        print(f"kernels picked: {results['kernels']}")
    hdr = f"{'quant':6} {'size':8} {'mode':6} {'vision':>7} {'prefill':>8} {'AR step':>8} {'MTP step':>8} " \
          f"{'tok/s':>6} {'e2e':>7} {'vis%pk':>6} {'pre%pk':>6} {'dec%bw':>6}"
    print(hdr)
    for eng in results["engines"]:
        for r in eng["runs"]:
            t = r["timings"]

            def f(v, fmt="{:8.3f}"):
                return fmt.format(v) if v is not None else " " * len(fmt.format(0.0))
            dec_bw = r.get("decode_step_fraction_of_bandwidth")
            vis_pk = r.get("vision_fraction_of_peak", r.get("vision_fraction_of_fp32_peak"))
            print(f"{eng['quantization']:6} {r['size']:8} {r['mode']:6} {t['vision']:7.2f} {t['prefill']:8.2f} "
                  f"{f(r['ar_step_s'])} {f(r['mtp_step_s'])} {t['tokens_per_second']:6.2f} {r['end_to_end_s']:7.2f} "
                  f"{100 * vis_pk:6.1f} {100 * r['prefill_fraction_of_peak']:6.1f} "
                  f"{f(dec_bw and 100 * dec_bw, '{:6.1f}')}")
        for r in eng["runs"]:
            if r.get("speedup"):
                print(f"  speed-up {r['size']} {r['mode']}: " +
                      ", ".join(f"{k} {v:.2f}x" for k, v in sorted(r["speedup"].items())))
        print(f"  {eng['quantization']}: load {eng['load_s']:.1f}s, peak RSS {eng['peak_rss_gb']:.2f} GB, "
              f"memory {json.dumps({k: round(v / 1e9, 3) for k, v in eng['memory'].items()})} GB")

    for ref in results.get("reference", []):
        load = f"load {ref['load_s']:.1f}s, " if "load_s" in ref else ""
        print(f"reference ({ref['engine']}, {baseline_size(ref)}, {ref['mode']}): {load}vision {ref['vision_s']:.2f}s, "
              f"prefill {ref['prefill_s']:.2f}s, decode {ref['decode_per_token_s']:.3f}s/token, "
              f"e2e {ref['end_to_end_s']:.1f}s, peak RSS {ref['peak_rss_gb']:.1f} GB")
    for ref in results.get("reference_failed", []):
        print(f"reference ({ref['dtype']}, {ref['size']}, {ref['mode']}): FAILED, {ref['error']}")
    for peer in results.get("peer", []):
        print(f"peer ({pathlib.Path(peer.get('model', '')).name}, {baseline_size(peer)}): vision "
              f"{peer['vit']['median_s']:.2f}s, prefill {peer['prefill_plus_1tok']['median_s']:.2f}s, decode "
              f"{peer['decode_slow']['per_token_s']:.3f}s/token, pipeline {peer['pipeline_est_s']}")
    rows = [(eng, r, key, st) for eng in results["engines"] for r in eng["runs"]
            for key, st in r.get("reference_stages", {}).items()]
    if rows:
        print("\nours vs the official PyTorch code, per stage: reference / ours (>1: ours faster; RSS: smaller)")
        print(f"{'quant':6} {'size':8} {'mode':6} {'reference':15} {'vision':>7} {'prefill':>7} {'dec/tok':>7} "
              f"{'e2e':>7} {'load':>7} {'RSS':>7}")
        for eng, r, key, st in rows:
            cells = " ".join(f"{v:6.2f}x" if v is not None else f"{'-':>7}" for v in
                             (st[k] for k in ("vision", "prefill", "decode_per_token", "end_to_end", "load",
                                              "peak_rss")))
            print(f"{eng['quantization']:6} {r['size']:8} {r['mode']:6} {key.replace('_', ' '):15} {cells}")


if __name__ == "__main__":
    sys.exit(main())
