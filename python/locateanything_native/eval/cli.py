"""`locateanything eval | metrics | prepare` (also `python -m locateanything_native.eval <command> ...`).

    locateanything eval --model_path M --test_jsonl_path EvalData/_annotations/box_eval/HumanRef.jsonl \
        --image_root_dir EvalData --save_path results/HumanRef/answer.jsonl --eval_type box_eval
    locateanything metrics --data_path results/HumanRef/answer.jsonl --output_path results/HumanRef/eval_results.json

Exit status: 0 when every row ran, 1 when some rows are error records (the others ran; re-run to retry
them) or a run failed, 2 for wrong options, a journal of another run, or no checkpoint; 130 after Ctrl-C
(re-run the same command to resume).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Optional, Sequence

from .. import _core
from . import prompts

COMMANDS = ("eval", "metrics", "prepare")


def _opt(parser, name: str, **kw):
    """An option under its official underscore spelling and the dashed one (--model_path / --model-path)."""
    flags = [name]
    if "_" in name:
        flags.append(name.replace("_", "-"))
    flags.extend(kw.pop("aliases", []))
    return parser.add_argument(*flags, **kw)


def eval_parser(prog: str = "locateanything eval") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a LocateAnything benchmark JSONL (the official EvalData format) and write the records the "
                    "official inference_*_ddp.py scripts write, resumably, in input order.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Re-running the same command after a crash or Ctrl-C resumes from <save_path>.partial.jsonl.")
    g = p.add_argument_group("official options (inference_grounding_ddp.py and friends)")
    _opt(g, "--model_path", aliases=["--model"], default=None,
         help="checkpoint folder (default: $LOCATEANYTHING_MODEL, then the Hugging Face cache)")
    _opt(g, "--test_jsonl_path", aliases=["--test_jsonl"], required=True, help="benchmark rows (JSON Lines)")
    _opt(g, "--image_root_dir", aliases=["--image_root"], default="",
         help="prepended to each row's image_path (file_name for ScreenSpot-Pro); empty: paths as given")
    _opt(g, "--save_path", required=True, help="records (JSON Lines), in input order")
    _opt(g, "--eval_type", default="box_eval", choices=prompts.EVAL_TYPES)
    _opt(g, "--generation_mode", default="hybrid", choices=prompts.GENERATION_MODES)
    _opt(g, "--max_new_tokens", type=int, default=prompts.DEFAULT_MAX_NEW_TOKENS)
    _opt(g, "--short_side_size", type=int, default=None,
         help="resize each image's short side to this (bilinear) before inference; coordinates are mapped back")
    for name in ("--num_workers", "--world_size", "--num_nodes", "--node_rank", "--local_rank"):
        _opt(g, name, type=int, default=None, help=argparse.SUPPRESS)
    for name in ("--master_addr", "--master_port", "--output_video"):
        _opt(g, name, default=None, help=argparse.SUPPRESS)
    _opt(g, "--video_fps", type=float, default=None, help=argparse.SUPPRESS)
    _opt(g, "--use_tcp", action="store_true", help=argparse.SUPPRESS)
    o = p.add_argument_group("ours")
    _opt(o, "--format", default="auto", choices=("auto", "grounding", "detection", "sspro"),
         help="record format: that of inference_grounding_ddp.py, inference_detection_ddp.py or inference_sspro_ddp.py "
              "(auto: sspro for file_name/instruction rows, detection for COCO/LVIS box_eval, else grounding)")
    _opt(o, "--quantization", default="int4", choices=_core.QUANTIZATIONS,
         help="int4 (default), int4-b128, int8, ... or none (the exact float path)")
    _opt(o, "--temperature", type=float, default=prompts.DEFAULT_TEMPERATURE,
         help="sampling temperature (default 0.7 as the scripts; 0 = greedy)")
    _opt(o, "--top_p", type=float, default=prompts.DEFAULT_TOP_P)
    _opt(o, "--repetition_penalty", type=float, default=prompts.DEFAULT_REPETITION_PENALTY)
    _opt(o, "--seed", type=int, default=0, help="query k of row i samples with a seed derived from (seed, i, k)")
    _opt(o, "--threads", type=int, default=0, help="CPU threads in all (0 = all cores), shared by the workers")
    _opt(o, "--workers", type=int, default=1,
         help="engine processes (each gets threads // workers threads); with --ray, the number of actors "
              "(default: as many as the cluster's CPUs allow)")
    _opt(o, "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
         help="spread the rows over a Ray cluster: the running one (or ADDRESS, e.g. auto or HEAD:6379), a "
              "local one started for you when there is none; same output file, order, resume and error records")
    _opt(o, "--ray_cpus_per_actor", type=float, default=2, help="CPUs (and engine threads) per Ray actor (default 2)")
    _opt(o, "--limit", type=int, default=None, help="run only the first N rows")
    _opt(o, "--batch_size", type=int, default=8, help="queries per engine call (default 8)")
    _opt(o, "--batch_images", type=int, default=1,
         help="distinct images per engine call (default 1: only rows on the same image are batched)")
    _opt(o, "--no_scores", action="store_true",
         help="leave out the 'scores' key (records then have the official keys only)")
    _opt(o, "--overwrite", action="store_true", help="discard the journal of an earlier run with other settings")
    _opt(o, "--no_progress", action="store_true", help="no progress bar")
    _opt(o, "--coco_json", default=None, help="COCO/LVIS annotations, for --fasteval_tsv / --coco_results")
    _opt(o, "--fasteval_tsv", default=None, help="also write the FastEval TSV (needs --coco_json)")
    _opt(o, "--coco_results", default=None, help="also write COCO results JSON (needs --coco_json)")
    return p


def metrics_parser(prog: str = "locateanything metrics") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Metrics of evaluation records by the rules of the official other_metric.py (box / point / GUI "
                    "tasks) or sspro_metric.py (ScreenSpot-Pro), and COCO AP through pycocotools.")
    _opt(p, "--data_path", aliases=["--jsonl_file"], required=True, help="evaluation records (JSON Lines)")
    _opt(p, "--output_path", aliases=["--output"], default=None, help="write the metrics as JSON here")
    _opt(p, "--iou_thresholds", type=float, nargs="+", default=None,
         help="default 0.5 0.55 ... 0.95 (0.5 alone when a record is a pointing task, as the official script)")
    _opt(p, "--no_auto_detect_pointing", action="store_true",
         help="keep every IoU threshold even when pointing records are present")
    _opt(p, "--format", default="auto", choices=("auto", "grounding", "sspro"),
         help="sspro: ScreenSpot-Pro accuracy (auto: records with image_name and instruction)")
    _opt(p, "--type_match_file", default=None, help="ScreenSpot-Pro: JSONL with img_filename and source/type fields")
    _opt(p, "--include_errors", action="store_true", help="score error records as empty predictions")
    _opt(p, "--coco_json", aliases=["--gt"], default=None,
         help="COCO annotations: COCO AP (pycocotools) and the exports")
    _opt(p, "--fasteval_tsv", default=None, help="write the FastEval TSV for coco_lvis_metric.py (needs --coco_json)")
    _opt(p, "--coco_results", default=None, help="write COCO results JSON (needs --coco_json)")
    return p


def _err(msg: str) -> None:
    print(f"locateanything: {msg}", file=sys.stderr)


def _exports(records, args) -> int:
    from .export import coco_results, write_fasteval_tsv

    if (args.fasteval_tsv or args.coco_results) and not args.coco_json:
        _err("--fasteval_tsv and --coco_results need --coco_json (the COCO/LVIS annotation file)")
        return 2
    try:
        if args.fasteval_tsv:
            n = write_fasteval_tsv(records, args.coco_json, args.fasteval_tsv)
            print(f"wrote {n} boxes to {args.fasteval_tsv}", file=sys.stderr)
        if args.coco_results:
            dets = coco_results(records, args.coco_json)
            os.makedirs(os.path.dirname(os.path.abspath(args.coco_results)), exist_ok=True)
            with open(args.coco_results, "w", encoding="utf-8") as f:
                json.dump(dets, f)
            print(f"wrote {len(dets)} detections to {args.coco_results}", file=sys.stderr)
    except (OSError, ValueError, KeyError) as exc:
        _err(f"export failed: {exc}")
        return 1
    return 0


def run_eval(argv: Sequence[str]) -> int:
    from ..models import find_model  # noqa: F401 - imported early so a broken install fails here
    from .runner import EvalOptions, JournalMismatch, evaluate

    args = eval_parser().parse_args(list(argv))
    if args.output_video:
        _err("--output_video is not supported; ignoring it")
    options = EvalOptions(
        test_jsonl_path=args.test_jsonl_path, save_path=args.save_path, model_path=args.model_path,
        image_root_dir=args.image_root_dir or "", format=args.format, eval_type=args.eval_type,
        generation_mode=args.generation_mode, max_new_tokens=args.max_new_tokens, short_side_size=args.short_side_size,
        quantization=args.quantization, temperature=args.temperature, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, seed=args.seed, threads=args.threads, workers=args.workers,
        limit=args.limit, batch_size=args.batch_size, batch_images=args.batch_images, scores=not args.no_scores,
        overwrite=args.overwrite, progress=not args.no_progress, ray=args.ray,
        ray_cpus_per_actor=args.ray_cpus_per_actor)
    if (args.fasteval_tsv or args.coco_results) and not args.coco_json:
        _err("--fasteval_tsv and --coco_results need --coco_json (the COCO/LVIS annotation file)")
        return 2
    if not os.path.isfile(args.test_jsonl_path):
        _err(f"--test_jsonl_path: no such file: {args.test_jsonl_path}")
        return 2
    try:
        summary = evaluate(options)
    except KeyboardInterrupt:
        _err(f"interrupted; finished rows are kept in {args.save_path}.partial.jsonl: run the same command to resume")
        sys.stderr.flush()
        if any(t.name == "locateanything-eval" and t.is_alive() for t in threading.enumerate()):
            os._exit(130)  # the engine is still busy in a helper thread; everything finished is on disk
        return 130
    except (JournalMismatch, ValueError) as exc:
        _err(str(exc))
        return 2
    except FileNotFoundError as exc:
        _err(str(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. a worker process died: say so, keep the journal
        _err(f"the run stopped: {type(exc).__name__}: {exc}; finished rows are kept, run the same command to resume")
        return 1
    print(f"wrote {summary.rows} records to {summary.save_path} ({summary.format} format; {summary.ran} run now, "
          f"{summary.reused} from the journal, {summary.seconds:.1f} s)", file=sys.stderr)
    if summary.errors:
        print(f"{summary.errors} rows could not run (records with an 'error' key; re-run the same command to retry "
              "them):", file=sys.stderr)
        for message in summary.error_messages[:10]:
            print(f"  {message}", file=sys.stderr)
        if summary.errors > 10:
            print(f"  ... and {summary.errors - 10} more", file=sys.stderr)
    status = 1 if summary.errors else 0
    if args.coco_json and (args.fasteval_tsv or args.coco_results):
        from .metrics import load_records

        status = max(status, _exports(load_records(args.save_path), args))
    return status


def run_metrics(argv: Sequence[str]) -> int:
    from . import metrics

    args = metrics_parser().parse_args(list(argv))
    try:
        records = metrics.load_records(args.data_path)
    except (OSError, json.JSONDecodeError) as exc:
        _err(f"cannot read {args.data_path}: {exc}")
        return 2
    status = 0
    fmt = args.format
    if fmt == "auto":
        fmt = "sspro" if metrics.is_sspro(records) else "grounding"
    if fmt == "sspro":
        result = metrics.sspro_metrics(records, metrics.load_type_mapping(args.type_match_file),
                                       include_errors=args.include_errors)
        print(metrics.format_sspro_table(result))
        out = result
    else:
        result = metrics.box_metrics(records, args.iou_thresholds,
                                     auto_detect_pointing=not args.no_auto_detect_pointing,
                                     include_errors=args.include_errors)
        print(metrics.format_box_table(result))
        out = dict(result)
        out["groups"] = {k: {**g, "by_iou": {str(t): v for t, v in g["by_iou"].items()}}
                         for k, g in result["groups"].items()}
        if args.coco_json:
            try:
                ap = metrics.coco_ap(records, args.coco_json)
            except metrics.Unsupported as exc:
                _err(f"COCO AP skipped: {exc}")
            except (OSError, ValueError, KeyError) as exc:
                _err(f"COCO AP failed: {exc}")
                status = 1
            else:
                print(ap["summary"].rstrip())
                out["coco_ap"] = {k: v for k, v in ap.items() if k != "summary"}
            status = max(status, _exports(records, args))
    if args.output_path:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_path)), exist_ok=True)
        with open(args.output_path, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        print(f"saved the metrics to {args.output_path}", file=sys.stderr)
    return status


def main(argv: Optional[Sequence[str]] = None, command: Optional[str] = None) -> int:
    """`command` is "eval", "metrics" or "prepare" (None: taken from argv[0], default "eval")."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if command is None:
        command = argv.pop(0) if argv and argv[0] in COMMANDS else "eval"
    if command == "eval":
        return run_eval(argv)
    if command == "metrics":
        return run_metrics(argv)
    if command == "prepare":
        print("locateanything prepare: not available yet", file=sys.stderr)
        return 2
    _err(f"unknown command {command!r} (eval, metrics, prepare)")
    return 2
