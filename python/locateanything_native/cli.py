"""`locateanything`: locate objects in images from the shell.

    locateanything --image photo.jpg --task detect --categories person car --draw photo-boxes.png
    locateanything --image photos/*.jpg --task point --phrase the red door --json > out.jsonl
    locateanything --image photos/ --task ground-single --phrase "the red car" --quantization int4-visf
    locateanything --demo            # a tiny random checkpoint: shows the pipeline, answers are meaningless
    locateanything eval ...          # also `metrics` and `prepare`: see locateanything_native.eval.cli

--categories takes several values, repeats and commas alike: `--categories "traffic light,car"`,
`--categories "traffic light" car` and `--categories "traffic light" --categories car` all mean the two
categories "traffic light" and "car". --image takes several files or folders (so a shell glob works) and
repeats. --phrase and --prompt join unquoted words with spaces. --task accepts `ground_single` as well as
`ground-single` (the dash form is what records and --help show).

With --json each image gives one line holding one object with always the same keys, in this order:
image, width, height (the original image), input_width, input_height (what the model saw: smaller with
--max-image-side), task, question, generation_mode, answer, boxes ([{label, x1, y1, x2, y2, score}]), points
([{label, x, y, score}]), stop_reason, timings (seconds per stage, token counts, tokens_per_second); the
answer part is `Result.to_dict()`. A score is the geometric mean of the probabilities of the item's
coordinate tokens (null when unknown).
Box and point coordinates are pixels of the original image, as the official parse_boxes / parse_points
(no clamping, no reordering). Exit status: 0 if every image ran, 1 if any failed (the others still
run), 2 for a usage error or when no checkpoint is found.
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
from .console import LoadReporter
from .engine import Engine, prepare
from .images import image_size, to_array
from .models import DOWNLOAD_HINT, ENV_VAR
from .prompts import question

TASKS = ("detect", "ground-single", "ground-multi", "ground-text", "detect-text", "ground-gui", "point", "raw")
# The engine's names when it says them (the "-visf" variants keep the vision tower in float32).
QUANTIZATIONS = tuple(_core.QUANTIZATIONS)
DEFAULTS = _core.GENERATION_DEFAULTS
# `locateanything <word> ...` hands the rest of the command line to locateanything_native.eval.cli.
SUBCOMMANDS = ("eval", "metrics", "prepare")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
DEMO_MAX_NEW_TOKENS = 32


class UsageError(Exception):
    """A wrong or missing option: reported with the usage line, exit code 2."""


def task_name(text: str) -> str:
    """--task in the dash form: `ground_single` (the Python method's name) is `ground-single`."""
    return text.strip().replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="locateanything",
        description="Locate objects, text, GUI elements and points in images with LocateAnything-3B on the CPU.",
        epilog="examples:\n"
               "  locateanything --image photo.jpg --task detect --categories person car --draw boxes.png\n"
               "  locateanything --image photos/*.jpg --task detect --categories \"traffic light,car\" --json\n"
               "  locateanything --image photos/ --task ground-single --phrase the red car --json > out.jsonl\n"
               "  locateanything --demo\n"
               "\n"
               "subcommands (evaluation on datasets; each has its own --help):\n"
               "  locateanything eval ...       run the model over a prepared dataset\n"
               "  locateanything metrics ...    score saved predictions\n"
               "  locateanything prepare ...    get a dataset ready for eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help=f"checkpoint folder or Hugging Face id (default: ${ENV_VAR}, then the HF cache)")
    p.add_argument("--demo", action="store_true", help="use a tiny RANDOM checkpoint made on the fly (meaningless answers)")
    p.add_argument("--image", nargs="+", action="extend", default=[], metavar="FILE_OR_FOLDER",
                   help="image files or folders of images (several after one --image, e.g. a shell glob; repeatable)")
    p.add_argument("--task", type=task_name, choices=TASKS, default="detect",
                   help="what to find (ground_single and the like are accepted too; default: detect)")
    p.add_argument("--categories", nargs="+", action="extend", metavar="CATEGORY",
                   help="categories for --task detect, separated by spaces or commas and repeatable: "
                        "person car, \"traffic light,car\"")
    p.add_argument("--phrase", nargs="+", action="append", metavar="WORD",
                   help="the phrase for the ground-*, point and ground-gui tasks (quotes optional)")
    p.add_argument("--prompt", nargs="+", action="append", metavar="WORD",
                   help="the whole question for --task raw (quotes optional)")
    p.add_argument("--gui-output", choices=("box", "point"), default="box", help="--task ground-gui answers boxes or points")
    p.add_argument("--generation-mode", choices=("hybrid", "fast", "slow"), default=DEFAULTS["generation_mode"])
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help=f"generation limit (default {DEFAULTS['max_new_tokens']}; {DEMO_MAX_NEW_TOKENS} with --demo)")
    p.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-p", type=float, default=DEFAULTS["top_p"])
    p.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="0 = off")
    p.add_argument("--repetition-penalty", type=float, default=DEFAULTS["repetition_penalty"],
                   help="1 = off (the official worker uses 1.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed (with --temperature > 0); default: a fresh stream seeded with 0")
    p.add_argument("--chat-template", choices=("worker", "eval"), default="worker",
                   help="prompt layout of the official worker or of the evaluation scripts")
    p.add_argument("--threads", type=int, default=0, help="0 = all cores")
    p.add_argument("--quantization", default="int4", choices=QUANTIZATIONS,
                   help="decoder weights (default: int4); a -visf suffix keeps the vision tower in float32")
    p.add_argument("--max-image-side", type=int, default=0, metavar="PIXELS",
                   help="downscale images whose longer side is larger first (0 = off); results stay in original pixels")
    p.add_argument("--loop-guard", action="store_true", help="stop runs of identical repeated boxes")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout (JSON Lines)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="answer the images on engine actors of a Ray cluster (the running one, ADDRESS, or a local "
                        "one started for you); output in input order as without it")
    p.add_argument("--ray-actors", type=int, default=0, help="Ray actors (default: as many as the cluster's CPUs allow)")
    p.add_argument("--ray-cpus-per-actor", type=float, default=2, help="CPUs (and engine threads) per Ray actor")
    p.add_argument("--draw", metavar="OUT",
                   help="write the annotated image to OUT (.png/.jpg); with several images or a folder, OUT is a "
                        "folder that gets one <image name>.png each")
    return p


def split_categories(values: list[str] | None) -> list[str]:
    """The categories of --categories: every value split on commas, whitespace stripped, empties dropped."""
    return [c.strip() for value in values or [] for c in value.split(",") if c.strip()]


def joined_words(option: str, given: list[list[str]] | None) -> str | None:
    """--phrase / --prompt as one string: unquoted words joined with spaces; given twice is a usage error."""
    if not given:
        return None
    if len(given) > 1:
        raise UsageError(f"{option} was given {len(given)} times; give it once (quotes optional: "
                         f"{option} the red car)")
    return " ".join(given[0])


def tidy(args) -> None:
    """Turns the lists argparse collects into what the rest of the CLI uses (in place)."""
    args.categories = split_categories(args.categories)
    args.phrase = joined_words("--phrase", args.phrase)
    args.prompt = joined_words("--prompt", args.prompt)


def check_numbers(args) -> None:
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.threads < 0:
        raise UsageError(f"--threads must be >= 0 (0 = all cores), got {args.threads}")
    if args.max_image_side < 0:
        raise UsageError(f"--max-image-side must be >= 0 (0 = off), got {args.max_image_side}")
    # The engine's own checks (one home: GenerationOptions in the C++ core), named as options here.
    try:
        _core.check_generation(args.generation_mode, args.max_new_tokens or 1, args.temperature, args.top_p, args.top_k,
                               args.repetition_penalty)
    except ValueError as exc:
        raise UsageError("--" + str(exc).replace("_", "-", 2)) from None


def question_for(args) -> str:
    if args.task == "detect":
        if not args.categories:
            raise UsageError("--task detect needs --categories (e.g. --categories person car)")
        return question("detect", args.categories)
    if args.task == "detect-text":
        return question("detect_text")
    if args.task == "raw":
        if not args.prompt:
            raise UsageError('--task raw needs --prompt (e.g. --prompt "Point to: the red door.")')
        return args.prompt
    if not args.phrase:
        raise UsageError(f'--task {args.task} needs --phrase (e.g. --phrase "the red car")')
    task = "ground_gui_point" if args.task == "ground-gui" and args.gui_output == "point" else args.task
    return question(task, args.phrase)


def list_images(paths: list[str]) -> tuple[list[pathlib.Path], bool]:
    """The image files named or found (sorted, per folder), and whether any path was a folder."""
    out, had_folder = [], False
    for p in map(pathlib.Path, paths):
        p = p.expanduser()
        if p.is_dir():
            had_folder = True
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"no images in folder {p} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"image not found: {p}")
    return out, had_folder


def demo_image() -> np.ndarray:
    """A synthetic 640×360 scene (a red square and a blue circle) for --demo without --image."""
    h, w = 360, 640
    img = np.full((h, w, 3), 235, np.uint8)
    img[100:220, 80:200] = (220, 30, 30)
    yy, xx = np.mgrid[0:h, 0:w]
    img[(yy - 180) ** 2 + (xx - 450) ** 2 < 70 ** 2] = (30, 60, 220)
    return img


def shrink(arr: np.ndarray, max_side: int) -> np.ndarray:
    """`arr` with its longer side at most `max_side` (bicubic, aspect ratio kept); unchanged if it fits."""
    w, h = image_size(arr)
    if max_side <= 0 or max(w, h) <= max_side:
        return arr
    s = max_side / max(w, h)
    return _core.resize_bicubic(_core.to_rgb(arr), max(1, round(w * s)), max(1, round(h * s)))


def rescale(items: list[dict], keys: tuple[str, ...], src: tuple[int, int], dst: tuple[int, int]) -> list[dict]:
    """Pixels of a src-sized image → pixels of a dst-sized one, exactly as parsing the answer at dst would.

    Answers hold integers 0..1000 relative to the whole image, so each one is recovered and scaled again
    (v / 1000 · size, the official formula) rather than multiplying floats by a ratio."""
    out = []
    for item in items:
        item = dict(item)
        for k in keys:
            i = 0 if k.startswith("x") else 1
            item[k] = round(item[k] * 1000 / src[i]) / 1000 * dst[i]
        out.append(item)
    return out


class DrawTarget:
    """Where --draw writes: one file, or a folder with one PNG per image (names made unique)."""

    def __init__(self, out: str, folder: bool):
        self.path, self.folder = pathlib.Path(out).expanduser(), folder
        self.used: set[str] = set()
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UsageError("--draw needs Pillow (pip install pillow)") from exc
        if not folder:
            if self.path.suffix.lower() not in Image.registered_extensions():
                raise UsageError(f"--draw {out}: unknown image type '{self.path.suffix}'; use a name ending in .png or .jpg")
            if not self.path.parent.is_dir():
                raise UsageError(f"--draw {out}: folder {self.path.parent} does not exist")

    def for_image(self, name: str) -> pathlib.Path:
        if not self.folder:
            return self.path
        self.path.mkdir(parents=True, exist_ok=True)
        stem, n = pathlib.Path(name).stem, 1
        candidate = stem
        while candidate in self.used:
            candidate, n = f"{stem}-{n}", n + 1
        self.used.add(candidate)
        return self.path / (candidate + ".png")


class Progress:
    """A small tqdm-like bar on stderr, shown only on a terminal and for more than one image."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.time()
        self.enabled = sys.stderr.isatty() and total > 1
        self.line = ""
        self.render("")

    def render(self, name: str) -> None:
        if not self.enabled:
            return
        elapsed = time.time() - self.start
        eta = f"{elapsed / self.done * (self.total - self.done):6.1f}s" if self.done else "     ?"
        bar = "#" * int(self.done / self.total * 30)
        self.line = f"[{bar:<30}] {self.done}/{self.total} {elapsed:6.1f}s eta {eta} {name[:30]}"
        sys.stderr.write("\r\033[K" + self.line + ("\n" if self.done == self.total else ""))
        sys.stderr.flush()

    def clear(self) -> None:
        """Removes the bar before other output (it comes back on the next step)."""
        if self.enabled and self.done < self.total:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def step(self, name: str) -> None:
        self.done += 1
        self.render(name)


def record(name: str, result, size: tuple[int, int], args, question: str) -> dict:
    """The JSON record of one image (key order fixed; see the module docstring): the CLI's own keys
    around the engine's `Result.to_dict()` (answer, boxes, points, stop_reason, timings), with boxes and
    points scaled back to the original image when the model saw a smaller one."""
    part = result.to_dict()
    boxes = [{k: b[k] for k in ("label", "x1", "y1", "x2", "y2", "score")} for b in part["boxes"]]
    points = [{k: p[k] for k in ("label", "x", "y", "score")} for p in part["points"]]
    seen = (part["width"], part["height"])
    if seen != size:
        boxes = rescale(boxes, ("x1", "y1", "x2", "y2"), seen, size)
        points = rescale(points, ("x", "y"), seen, size)
    return {
        "image": name,
        "width": size[0],
        "height": size[1],
        "input_width": seen[0],
        "input_height": seen[1],
        "task": args.task,
        "question": question,
        "generation_mode": args.generation_mode,
        "answer": part["answer"],
        "boxes": boxes,
        "points": points,
        "stop_reason": part["stop_reason"],
        "timings": dict(part["timings"]),
    }


def print_text(rec: dict) -> None:
    t = rec["timings"]
    print(f"{rec['image']} ({rec['width']}x{rec['height']}): {rec['answer']}")
    for b in rec["boxes"]:
        print(f"  box   {b['label'] or '-':<20} ({b['x1']:.1f}, {b['y1']:.1f}, {b['x2']:.1f}, {b['y2']:.1f})")
    for p in rec["points"]:
        print(f"  point {p['label'] or '-':<20} ({p['x']:.1f}, {p['y']:.1f})")
    print(f"  time: preprocess {t['preprocess']:.3f}s, vision {t['vision']:.3f}s, projector {t['projector']:.3f}s, "
          f"prefill {t['prefill']:.3f}s, decode {t['decode']:.3f}s ({t['generated_tokens']} tokens, "
          f"{t['tokens_per_second']:.1f} tok/s, stop: {rec['stop_reason']})", flush=True)


def prepare_main(argv: list[str]) -> int:
    """`locateanything prepare`: builds the packed weight cache of a model once (e.g. on each node
    before a job), so the processes that load it later only map it."""
    p = argparse.ArgumentParser(prog="locateanything prepare",
                                description="Build the packed weight cache of a model once, before a job.")
    p.add_argument("--model", help=f"checkpoint folder or Hugging Face id (default: ${ENV_VAR}, then the HF cache)")
    p.add_argument("--revision", help="Hugging Face revision when --model is a repo id")
    p.add_argument("--quantization", "-q", action="append", metavar="NAME",
                   choices=[q for q in QUANTIZATIONS if q != "none"],
                   help="quantised plan(s) to prepare (repeatable; default int4)")
    args = p.parse_args(argv)
    try:
        for q in args.quantization or ["int4"]:
            path = prepare(args.model, quantization=q, revision=args.revision, progress=LoadReporter())
            print(f"{q}: {path}")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_subcommand(command: str, rest: list[str]) -> int:
    """`locateanything eval|metrics ...`: handed to locateanything_native.eval.cli (loaded only then);
    `prepare` is answered here."""
    if command == "prepare":
        return prepare_main(rest)
    try:
        from .eval.cli import main as eval_main
    except ImportError as exc:
        print(f"error: `locateanything {command}` needs locateanything_native.eval, which cannot be imported "
              f"({exc})", file=sys.stderr)
        return 2
    return eval_main(rest, command) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Everything cheap is checked before the (slow) model load.
        tidy(args)
        check_numbers(args)
        question = question_for(args)
        paths, had_folder = list_images(args.image)
        sources: list = [(str(p), p) for p in paths]
        if not sources:
            if not args.demo:
                raise UsageError("pass --image FILE_OR_FOLDER (or --demo to try the pipeline)")
            sources = [("demo-scene.png", demo_image())]
        target = DrawTarget(args.draw, folder=len(sources) > 1 or had_folder or pathlib.Path(args.draw).is_dir()
                            or not pathlib.Path(args.draw).suffix) if args.draw else None
        if args.max_new_tokens is None:
            args.max_new_tokens = DEMO_MAX_NEW_TOKENS if args.demo else DEFAULTS["max_new_tokens"]
    except UsageError as exc:
        print(f"error: {exc}\n(see: locateanything --help)", file=sys.stderr)
        return 2

    pool = None  # the Ray engine actors, with --ray
    try:
        if args.demo:
            model = demo_checkpoint()
            print("[demo] using a tiny RANDOM checkpoint: the pipeline runs end to end, the answers are meaningless.",
                  file=sys.stderr)
        else:
            model = args.model
        if args.ray is not None:
            from .cluster import EnginePool
            from .models import find_model

            pool = EnginePool(find_model(model), args.quantization, args.ray, actors=args.ray_actors,
                              cpus_per_actor=args.ray_cpus_per_actor)
            answers = answers_on_ray(pool, sources, question, args)
        else:
            engine = Engine(model, threads=args.threads, quantization=args.quantization, progress=LoadReporter())
            answers = (answer_image(engine, (src, question, generation_options(args))) for _, src in sources)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if DOWNLOAD_HINT not in str(exc):
            print(DOWNLOAD_HINT, file=sys.stderr)
        print("(or try the pipeline on a tiny random checkpoint: locateanything --demo)", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError, ImportError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 1

    failed = 0
    progress = Progress(len(sources))
    try:
        for (name, src), outcome in zip(sources, answers):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                size, result = outcome
                rec = record(name, result, size, args, question)
                progress.clear()
                if args.json:
                    print(json.dumps(rec), flush=True)
                else:
                    print_text(rec)
                if target is not None:
                    from .viz import draw

                    out = target.for_image(name)
                    draw(to_array(src), rec).save(out)
                    if not args.json:
                        print(f"  drawn: {out}", flush=True)
            except BrokenPipeError:
                raise
            except (ValueError, RuntimeError, OSError) as exc:
                failed += 1
                progress.clear()
                print(f"error: {name}: {exc}", file=sys.stderr, flush=True)
            progress.step(pathlib.Path(name).name)
    except KeyboardInterrupt:
        progress.clear()
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `locateanything ... --json | head -1`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        if pool is not None:
            pool.close()
    if failed:
        print(f"error: {failed} of {len(sources)} images failed", file=sys.stderr)
        return 1
    return 0


def generation_options(args) -> dict:
    return dict(max_side=args.max_image_side, generation_mode=args.generation_mode,
                max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                repetition_penalty=args.repetition_penalty, seed=args.seed, loop_guard=args.loop_guard,
                chat_template=args.chat_template)


def answer_image(engine, payload):
    """(original size, Result) of one image, or the exception a bad image raised (so that, on Ray, a bad
    image is reported like any other and never kills the actor that read it)."""
    src, question, options = payload
    options = dict(options)
    try:
        arr = to_array(src)
        return image_size(arr), engine.run(shrink(arr, options.pop("max_side")), question, **options)
    except (ValueError, RuntimeError, OSError) as exc:
        return exc


def answers_on_ray(pool, sources, question, args):
    """The answers of `sources` in input order, computed by the pool's actors in any order. Images are
    read here, as they are sent, and travel as arrays: the actors need only the model, not the files."""
    def items():
        for i, (_, src) in enumerate(sources):
            try:
                yield i, (to_array(src), question, generation_options(args))
            except (ValueError, OSError) as exc:
                yield i, exc

    ready: dict = {}
    done = pool.imap_unordered(_answer_indexed, items())
    for i in range(len(sources)):
        while i not in ready:
            (j, _), outcome = next(done)
            ready[j] = outcome
        yield ready.pop(i)


def _answer_indexed(engine, item):
    payload = item[1]
    return payload if isinstance(payload, Exception) else answer_image(engine, payload)


if __name__ == "__main__":
    sys.exit(main())
