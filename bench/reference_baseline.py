"""Times the official PyTorch LocateAnything code on the CPU (float32 or bfloat16) on the same checkpoint
and images as bench_e2e.py, so the end-to-end benchmark can report a ratio measured on the same machine.

    python3 bench/reference_baseline.py --eagle /path/to/NVlabs-Eagle --model bench/cache/random-full \
        --size 448x448 --tokens 64 --mode slow --threads 2 [--dtype bfloat16] --out bench/results/reference.json

--dtype picks the dtype the official worker loads the model in (float32, the default, or bfloat16, the
worker's own default); the pixel values are cast to it as the worker does. --image and --categories
(bench_e2e.py --reference-dtype passes its own) make the query the same as the one our engine timed;
without them the image is seeded noise of --size and the prompt asks for "person".

Needs torch (CPU) and transformers 4.57.1 (the version the official repo pins) from pip, and a checkout
of NVlabs/Eagle (its Embodied/ folder holds the worker and the model's remote code). The checkpoint
folder is not modified: a temporary folder links its files and adds the remote-code .py files.
"""
from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import pathlib
import re
import resource
import shutil
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "shared" / "fixtures"


def model_dir_with_remote_code(model: pathlib.Path, eagle: pathlib.Path) -> pathlib.Path:
    code = eagle / "Embodied" / "eaglevl" / "utils" / "locany"
    if not code.is_dir():
        raise SystemExit(f"{code} not found: pass the root of an NVlabs/Eagle checkout with --eagle")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="la_reference_"))
    for f in model.iterdir():
        target = f.resolve()
        # Some checkouts flatten symlinks into small files holding the relative path: follow them.
        if target.is_file() and target.stat().st_size < 1024:
            text = target.read_text(errors="replace").strip()
            if text and "\n" not in text and "{" not in text and (target.parent / text).is_file():
                target = (target.parent / text).resolve()
        (tmp / f.name).symlink_to(target)
    for f in code.glob("*.py"):
        shutil.copyfile(f, tmp / f.name)
    for name in ("processor_config.json", "chat_template.json", "preprocessor_config.json"):
        if not (tmp / name).exists():
            src = code / name if (code / name).exists() else FIXTURES / "tiny-a" / name
            shutil.copyfile(src, tmp / name)
    return tmp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eagle", required=True, help="root of an NVlabs/Eagle checkout")
    p.add_argument("--model", default=str(HERE / "cache" / "random-full"))
    p.add_argument("--size", default="448x448", help="image W×H")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--mode", default="slow", choices=("slow", "fast", "hybrid"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="dtype the model is loaded and run in (default float32)")
    p.add_argument("--image", help="image file to query (default: seeded noise of --size)")
    p.add_argument("--categories", default="person", help="comma-separated categories to locate")
    p.add_argument("--out")
    args = p.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE / "reference_shims"))
    model_dir = model_dir_with_remote_code(pathlib.Path(args.model), pathlib.Path(args.eagle))
    atexit.register(shutil.rmtree, model_dir, ignore_errors=True)  # also when loading or running fails
    spec = importlib.util.spec_from_file_location(
        "locateanything_worker", pathlib.Path(args.eagle) / "Embodied" / "locateanything_worker.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    t0 = time.time()
    worker = mod.LocateAnythingWorker(str(model_dir), device="cpu", dtype=getattr(torch, args.dtype))
    load_s = time.time() - t0
    if args.image:
        img = Image.open(args.image).convert("RGB")
        size = f"{img.width}x{img.height}"
    else:
        w, h = (int(v) for v in args.size.split("x"))
        img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
        size = args.size
    categories = [c for c in args.categories.split(",") if c]

    # Vision tower and projector alone, through the model's own modules.
    inputs = worker.processor(text=["<image-1>"], images=[img], return_tensors="pt")
    with torch.no_grad():
        t0 = time.time()
        grid = torch.as_tensor(np.asarray(inputs["image_grid_hws"]), dtype=torch.int32)  # as generate() converts it
        # Cast as the worker does before generate() (float32 or bfloat16, whichever the model holds).
        feats = worker.model.extract_feature(inputs["pixel_values"].to(worker.model.dtype), grid)
        vision_s = time.time() - t0
        t0 = time.time()
        worker.model.mlp1(torch.cat(feats, dim=0))
        projector_s = time.time() - t0

    t0 = time.time()
    out = worker.detect(img, categories, generation_mode=args.mode, max_new_tokens=args.tokens, temperature=0.0,
                        top_p=1.0, repetition_penalty=1.0, verbose=True)
    total_s = time.time() - t0
    stats = dict(re.findall(r"(\w+(?:\(s\))?)=([\d.]+)", out["stats"]))
    n_tokens = int(stats["num_tokens"])
    generate_s, prefill_s = float(stats["generate_time(s)"]), float(stats["prefill_time"])
    result = {
        "engine": f"official PyTorch (CPU, {args.dtype})",
        "dtype": args.dtype,
        "torch": torch.__version__,
        "threads": args.threads,
        "size": size,
        "mode": args.mode,
        "image": args.image,  # null: seeded noise
        "categories": categories,
        "load_s": load_s,
        "vision_s": vision_s,
        "projector_s": projector_s,
        "prefill_s": prefill_s - vision_s - projector_s,  # generate's prefill_time includes the vision tower
        "decode_s": generate_s - prefill_s,
        "decode_per_token_s": (generate_s - prefill_s) / max(1, n_tokens - 1),
        "forward_steps": int(stats["forward_step"]),
        "generated_tokens": n_tokens,
        "end_to_end_s": total_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
