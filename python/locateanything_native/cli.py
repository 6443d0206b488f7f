"""`locateanything`: locate objects in images from the shell.

    locateanything --image photo.jpg --task detect --categories person,car
    locateanything --image photos/ --task point --phrase "the red door" --json > out.jsonl
    locateanything --demo            # a tiny random checkpoint: shows the pipeline, answers are meaningless
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

from . import _core
from .checkpoint import demo_checkpoint
from .engine import Engine
from .images import image_size, to_array
from .models import DOWNLOAD_HINT, ENV_VAR

TASKS = ("detect", "ground-single", "ground-multi", "ground-text", "detect-text", "ground-gui", "point", "raw")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="locateanything",
        description="Locate objects, text, GUI elements and points in images with LocateAnything-3B on the CPU.",
    )
    p.add_argument("--model", help=f"checkpoint folder or Hugging Face id (default: ${ENV_VAR}, then the HF cache)")
    p.add_argument("--demo", action="store_true", help="use a tiny RANDOM checkpoint made on the fly (meaningless answers)")
    p.add_argument("--image", action="append", default=[], help="image file or folder (repeatable)")
    p.add_argument("--task", choices=TASKS, default="detect")
    p.add_argument("--categories", help="comma-separated categories for --task detect")
    p.add_argument("--phrase", help="the phrase for ground-*/point/ground-gui tasks")
    p.add_argument("--prompt", help="free question for --task raw")
    p.add_argument("--gui-output", choices=("box", "point"), default="box", help="--task ground-gui output type")
    p.add_argument("--generation-mode", choices=("hybrid", "fast", "slow"), default="hybrid")
    p.add_argument("--max-new-tokens", type=int, default=2048)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="0 = all cores")
    p.add_argument("--quantization", default="none")
    p.add_argument("--max-image-side", type=int, default=0, help="downscale larger images first (0 = off)")
    p.add_argument("--loop-guard", action="store_true", help="stop runs of identical repeated boxes")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    p.add_argument("--draw", metavar="OUT.png", help="write the annotated image (a folder when several images)")
    return p


def question_for(args) -> str:
    if args.task == "detect":
        if not args.categories:
            raise SystemExit("error: --task detect needs --categories (e.g. --categories person,car)")
        cats = [c.strip() for c in args.categories.split(",") if c.strip()]
        return _core.task_prompt("detect", _core.join_categories(cats))
    if args.task == "detect-text":
        return _core.task_prompt("detect_text", "")
    if args.task == "raw":
        if not args.prompt:
            raise SystemExit("error: --task raw needs --prompt")
        return args.prompt
    if not args.phrase:
        raise SystemExit(f"error: --task {args.task} needs --phrase")
    task = {"ground-single": "ground_single", "ground-multi": "ground_multi", "ground-text": "ground_text",
            "point": "point", "ground-gui": "ground_gui_point" if args.gui_output == "point" else "ground_gui"}[args.task]
    return _core.task_prompt(task, args.phrase)


def list_images(paths: list[str]) -> list[pathlib.Path]:
    out = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"error: image not found: {p}")
    return out


def demo_image() -> np.ndarray:
    """A synthetic 640×360 scene (a red square and a blue circle) for --demo without --image."""
    h, w = 360, 640
    img = np.full((h, w, 3), 235, np.uint8)
    img[100:220, 80:200] = (220, 30, 30)
    yy, xx = np.mgrid[0:h, 0:w]
    img[(yy - 180) ** 2 + (xx - 450) ** 2 < 70 ** 2] = (30, 60, 220)
    return img


def shrink(arr: np.ndarray, max_side: int) -> np.ndarray:
    w, h = image_size(arr)
    if max_side <= 0 or max(w, h) <= max_side:
        return arr
    s = max_side / max(w, h)
    rgb = _core.to_rgb(arr)
    return _core.resize_bicubic(rgb, max(1, round(w * s)), max(1, round(h * s)))


class Progress:
    """A small tqdm-like bar on stderr, shown only on a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.time()
        self.enabled = sys.stderr.isatty() and total > 1

    def step(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r[{bar:<30}] {self.done}/{self.total} {elapsed:6.1f}s eta {eta:6.1f}s {name[:30]:<30}")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def record(name: str, result, width: int, height: int) -> dict:
    return {
        "image": name,
        "width": width,
        "height": height,
        "answer": result.answer,
        "boxes": result.boxes,
        "points": result.points,
        "stop_reason": result.stop_reason,
        "timings": result.timings,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.demo:
            model = demo_checkpoint()
            print("[demo] using a tiny RANDOM checkpoint: the pipeline runs end to end, the answers are meaningless.",
                  file=sys.stderr)
        else:
            model = args.model
        try:
            engine = Engine(model, threads=args.threads, quantization=args.quantization)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if "No LocateAnything checkpoint" not in str(exc):
                print(DOWNLOAD_HINT, file=sys.stderr)
            print("(or try the pipeline on a tiny random checkpoint: locateanything --demo)", file=sys.stderr)
            return 2
        question = question_for(args)
        sources: list = list_images(args.image)
        if not sources:
            if not args.demo:
                raise SystemExit("error: pass --image FILE_OR_FOLDER")
            sources = [("demo-scene.png", demo_image())]
        if args.demo and args.max_new_tokens == 2048:
            args.max_new_tokens = 32
        progress = Progress(len(sources))
        for src in sources:
            name, image = (src if isinstance(src, tuple) else (str(src), src))
            arr = to_array(image)
            width, height = image_size(arr)
            result = engine.run(
                shrink(arr, args.max_image_side), question, generation_mode=args.generation_mode,
                max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                repetition_penalty=args.repetition_penalty, loop_guard=args.loop_guard)
            # Normalised coordinates refer to the whole image, so they map to the original size.
            result_record = record(name, result, width, height)
            if (width, height) != (result.width, result.height):
                from .worker import LocateAnythingWorker as W
                result_record["boxes"] = [dict(label=b["label"], **c) for b, c in
                                          zip(result.boxes, W.parse_boxes(result.answer, width, height))]
                result_record["points"] = [dict(label=p["label"], **c) for p, c in
                                           zip(result.points, W.parse_points(result.answer, width, height))]
            if args.json:
                print(json.dumps(result_record), flush=True)
            else:
                t = result.timings
                print(f"{name}: {result.answer}")
                for b in result_record["boxes"]:
                    print(f"  box   {b['label'] or '-':<20} ({b['x1']:.1f}, {b['y1']:.1f}, {b['x2']:.1f}, {b['y2']:.1f})")
                for p in result_record["points"]:
                    print(f"  point {p['label'] or '-':<20} ({p['x']:.1f}, {p['y']:.1f})")
                print(f"  time: preprocess {t['preprocess']:.3f}s, vision {t['vision']:.3f}s, projector "
                      f"{t['projector']:.3f}s, prefill {t['prefill']:.3f}s, decode {t['decode']:.3f}s "
                      f"({t['generated_tokens']} tokens, {t['tokens_per_second']:.1f} tok/s, stop: {result.stop_reason})")
            if args.draw:
                from .viz import draw

                out = pathlib.Path(args.draw)
                if len(sources) > 1:
                    out.mkdir(parents=True, exist_ok=True)
                    out = out / (pathlib.Path(name).stem + ".png")
                draw(arr, result_record).save(out)
            progress.step(pathlib.Path(name).name)
        return 0
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
