"""Benchmark evaluation the way NVlabs/Eagle's Embodied/evaluation scripts run it, on the CPU engine.

    from locateanything_native.eval import GroundingEvalWorker, normalize_categories, parse_prediction

* Workers that stand where the official scripts define their own (`GroundingEvalWorker`,
  `DetectionEvalWorker`, `SSProEvalWorker`): same constructor, methods and return values.
* The scripts' helpers: `normalize_categories`, `parse_prediction`, `resize_image_short_side`,
  `build_generate_kwargs` (one parser for the whole package).
* `evaluate(EvalOptions(...))` / `locateanything eval`: a benchmark JSONL → the scripts' records,
  resumable, in input order; `run_rows(engine, rows, options)` for other schedulers.
* `box_metrics`, `sspro_metrics`, `coco_ap` / `locateanything metrics`: the metric scripts' numbers.
"""
from .metrics import box_metrics, coco_ap, sspro_metrics  # noqa: F401
from .parsing import normalize_categories, parse_prediction, resize_image_short_side  # noqa: F401
from .prompts import build_generate_kwargs, derive_seed  # noqa: F401
from .runner import EvalOptions, EvalSummary, evaluate, read_rows, run_rows  # noqa: F401
from .workers import DetectionEvalWorker, GroundingEvalWorker, SSProEvalWorker  # noqa: F401

__all__ = [
    "DetectionEvalWorker",
    "EvalOptions",
    "EvalSummary",
    "GroundingEvalWorker",
    "SSProEvalWorker",
    "box_metrics",
    "build_generate_kwargs",
    "coco_ap",
    "derive_seed",
    "evaluate",
    "normalize_categories",
    "parse_prediction",
    "read_rows",
    "resize_image_short_side",
    "run_rows",
    "sspro_metrics",
]
