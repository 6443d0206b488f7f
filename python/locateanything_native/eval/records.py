"""Rows of a benchmark JSONL → the queries to ask → the records the official scripts write.

Three record formats, one per official script:

* "grounding" (inference_grounding_ddp.py): input rows `image_path`, `categories` (a list or a comma
  string), `gt`, `dataset_name`, `task_name` (and `question`, read and unused as in the script); records
  `image_path, extracted_predictions, gt, question, dataset_name, raw_response, task_name`, plus
  `per_category_outputs` for per-category pointing.
* "detection" (inference_detection_ddp.py, COCO / LVIS): the same input and record keys; categories are
  used as given (no normalisation) and answers are read for boxes only.
* "sspro" (inference_sspro_ddp.py, ScreenSpot-Pro): input rows `file_name`, `instruction`, `answer`,
  optional `data_type` / `data_source`; records `image_name, data_type, data_source, instruction,
  extracted_predictions, gt, question, raw_response`.

Both box formats replace `gt` by `gt["gt_mask"]` when present. Ours adds, after those keys: `scores`
(`{label: [confidence, ...]}` aligned with `extracted_predictions`, when the engine reports confidences)
and, on a row that could not run, `error` (the message; `extracted_predictions` is then `{}` and
`raw_response` is "").
"""
from __future__ import annotations

import os
from typing import Optional

from . import prompts
from .parsing import normalize_categories, parse_with_scores, scale_back

FORMATS = ("grounding", "detection", "sspro")
DETECTION_DATASETS = frozenset({"COCO", "LVIS", "LVIS_fullval"})
_BOX_KEYS = ("image_path", "categories", "gt", "dataset_name", "task_name")
_SSPRO_KEYS = ("file_name", "instruction", "answer")


def resolve_format(fmt: str, rows: list, eval_type: str) -> str:
    """`auto`: "sspro" when the first readable row has `file_name` and `instruction` (and no `image_path`);
    "detection" for a `box_eval` run whose first row's dataset is COCO, LVIS or LVIS_fullval (what the
    official eval_coco.sh / eval_lvis.sh run); "grounding" otherwise."""
    if fmt != "auto":
        if fmt not in FORMATS:
            raise ValueError(f"format must be auto, {', '.join(FORMATS)}; got {fmt!r}")
        return fmt
    first = next((r["entry"] for r in rows if r.get("entry") is not None), None)
    if first is None:
        return "grounding"
    if "file_name" in first and "instruction" in first and "image_path" not in first:
        return "sspro"
    if eval_type == "box_eval" and first.get("dataset_name") in DETECTION_DATASETS:
        return "detection"
    return "grounding"


class RowError(Exception):
    """A row that cannot run (bad JSON, missing key, unreadable image); its message goes in the record."""


class Plan:
    """What one row asks: its questions, the image file, and the record skeleton."""

    def __init__(self, fmt: str, row: dict, options):
        self.fmt = fmt
        self.index = row["index"]
        self.where = f"line {row['line']}" if row.get("line") is not None else f"row {self.index}"
        self.entry = row.get("entry")
        self.error: Optional[str] = row.get("error")
        self.questions: list[str] = []
        self.categories: list = []
        self.per_category = False
        self.image_file: Optional[str] = None
        self.skeleton: dict = _empty_skeleton(fmt)
        if self.error is None:
            try:
                self._plan(options)
            except RowError as exc:
                self.error = str(exc)

    def _require(self, keys):
        if not isinstance(self.entry, dict):
            raise RowError(f"{self.where}: not a JSON object")
        missing = [k for k in keys if k not in self.entry]
        if missing:
            raise RowError(f"{self.where}: missing key{'s' if len(missing) > 1 else ''} "
                           + ", ".join(repr(k) for k in missing))

    def _plan(self, options):
        e = self.entry
        if self.fmt == "sspro":
            self.skeleton = {"image_name": e.get("file_name"), "data_type": e.get("data_type", "Unknown"),
                             "data_source": e.get("data_source", "Unknown"), "instruction": e.get("instruction"),
                             "extracted_predictions": {}, "gt": e.get("answer"), "question": None,
                             "raw_response": ""}
            self._require(_SSPRO_KEYS)
            self.questions = [prompts.sspro_question(e["instruction"])]
            self.skeleton["question"] = self.questions[0]
            name = e["file_name"]
            if not isinstance(name, str) or not name:
                raise RowError(f"{self.where}: file_name must be a non-empty string")
            self.image_file = os.path.join(options.image_root_dir or "", name)
            return
        self.skeleton = {"image_path": e.get("image_path") if isinstance(e, dict) else None,
                         "extracted_predictions": {}, "gt": e.get("gt") if isinstance(e, dict) else None,
                         "question": None, "dataset_name": e.get("dataset_name") if isinstance(e, dict) else None,
                         "raw_response": "", "task_name": e.get("task_name") if isinstance(e, dict) else None}
        self._require(_BOX_KEYS)
        if self.fmt == "detection":
            cats = e["categories"]
            if isinstance(cats, str):
                cats = normalize_categories(cats)  # the script would join the string's characters
            if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) for c in cats):
                raise RowError(f"{self.where}: categories must be a list of strings or a comma string")
            self.categories = list(cats)
            self.questions = [prompts.detection_question(self.categories)]
        else:
            self.categories = normalize_categories(e["categories"])
            self.questions, self.per_category = prompts.grounding_queries(self.categories, e["dataset_name"],
                                                                          options.eval_type)
        self.skeleton["question"] = " | ".join(self.questions) if self.per_category else self.questions[0]
        path = e["image_path"]
        if not isinstance(path, str) or not path:
            raise RowError(f"{self.where}: image_path must be a non-empty string")
        self.image_file = os.path.join(options.image_root_dir, path) if options.image_root_dir else path

    # ---- records ----
    def error_record(self, message: str) -> dict:
        record = dict(self.skeleton)
        record["error"] = message
        return record

    def record(self, results: list, size: tuple, scale: float, options) -> dict:
        """The official record from the engine Results of this row's questions (in order)."""
        w, h = size
        scaled = options.short_side_size is not None and scale != 1.0
        record = dict(self.skeleton)
        if self.per_category:
            preds: dict = {}
            scores: dict = {}
            raw_by_category: dict = {}
            for category, result in zip(self.categories, results):
                text = result.answer
                raw_by_category[category] = text
                parsed, parsed_scores = parse_with_scores(text, w, h, result)
                for label, coords in parsed.items():  # every point counts for the queried category
                    for c, s in zip(coords, parsed_scores[label]):
                        if len(c) == 2:
                            preds.setdefault(category, []).append(c)
                            scores.setdefault(category, []).append(s)
                preds.setdefault(category, [])
                scores.setdefault(category, [])
            record["raw_response"] = "\n".join(r.answer for r in results)
        else:
            result = results[0]
            record["raw_response"] = result.answer
            preds, scores = parse_with_scores(result.answer, w, h, result, points=self.fmt != "detection")
        if scaled:
            preds = scale_back(preds, scale)
        record["extracted_predictions"] = preds
        if self.per_category:
            record["per_category_outputs"] = raw_by_category
        if self.fmt != "sspro":
            gt = record["gt"]
            if isinstance(gt, dict) and "gt_mask" in gt:
                record["gt"] = gt["gt_mask"]
        if options.scores and any(s is not None for v in scores.values() for s in v):
            record["scores"] = scores
        return record


def _empty_skeleton(fmt: str) -> dict:
    keys: tuple[str, ...]
    if fmt == "sspro":
        keys = ("image_name", "data_type", "data_source", "instruction", "extracted_predictions", "gt", "question",
                "raw_response")
    else:
        keys = ("image_path", "extracted_predictions", "gt", "question", "dataset_name", "raw_response", "task_name")
    return {k: ({} if k == "extracted_predictions" else "" if k == "raw_response" else None) for k in keys}
