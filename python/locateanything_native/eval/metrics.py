"""Benchmark metrics from evaluation records, by the rules of the official metric scripts.

`box_metrics(records)` follows metrics/other_metric.py. Records are grouped by
`"{task_name}_{dataset_name}"` (a record without `task_name` counts as "referring_object_detection").
Per record and IoU threshold it finds recall and precision, then per group: precision and recall are
the means over records, F1 = 2PR / (P + R) of those means, and "mean" averages P, R and F1 over the
thresholds (0.5:0.05:0.95 by default; when any record is a `pointing` / `pointing_referring` task the
official script uses 0.5 alone for every group, and so do we unless `auto_detect_pointing=False`).

* boxes (any other task): prediction and ground-truth labels are compared after normalisation (letters
  only, lower case, for common_object_detection / long_tailed_object_detection / dense_object_detection;
  "_" and " " removed otherwise); the ground-truth boxes of all labels and the predictions of the labels
  the ground truth has are matched greedily, each ground-truth box taking the unused prediction of
  highest IoU >= threshold; recall = matches / ground-truth boxes, precision = matches / all predictions
  (None / "None" not counted). No ground-truth label: 1 / 1 with no prediction, else 0 / 0.
* referring_object_detection: the same matching over all boxes, labels ignored.
* polygon tasks (task4_detect_all_in_polygon, task2_detect_all_in_polygon_and_recog): polygon IoU
  (needs shapely).
* pointing: a point hits a ground-truth box (inclusive) or an RLE mask (needs pycocotools) of the same
  label; each ground-truth item takes the first unused hit. pointing_referring: the first predicted
  label is read as the first ground-truth label.
* gui: correct when a predicted point, or the centre of a predicted box, lies in the ground-truth box.
* hallucination: correct when nothing is predicted.
Also per group: instruction following (share of ground-truth labels predicted), wrong rejections (records
with a None prediction) and, for visual_prompt_detection, the mean absolute count error. A record that
makes the official script raise is left out of that threshold, as there; keypoint tasks are not scored.

`sspro_metrics(records)` follows metrics/sspro_metric.py (ScreenSpot-Pro): accuracy overall and per
"source-type", a hit as for gui; the source comes from the image name's prefix (pc_ / mobile_ / web_),
then from the `type_match_file` rows (`img_filename` with data_source / data_type or group / ui_type).

Records with an "error" key (rows the runner could not run; the official scripts write no record for
them) are left out unless `include_errors=True`, which scores them as empty predictions.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from statistics import mean
from typing import Iterable, Optional

DEFAULT_IOU_THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
POINTING_TASKS = ("pointing", "pointing_referring")
LETTER_TASKS = frozenset({"common_object_detection", "long_tailed_object_detection", "dense_object_detection"})
NORMALISED_FOLLOWING_TASKS = frozenset({"common_object_detection", "long_tailed_object_detection"})
POLYGON_TASKS = frozenset({"task4_detect_all_in_polygon", "task2_detect_all_in_polygon_and_recog"})
SINGLE_PASS_TASKS = frozenset({"pointing", "hallucination", "gui"})  # scored once, copied to every threshold


class Unsupported(Exception):
    """A record this implementation does not score (missing optional dependency, keypoint task)."""


# ---------------------------------------------------------------- geometry

def _norm_label(label: str, task) -> str:
    if task in LETTER_TASKS:
        return "".join(ch.lower() for ch in label if ch.isalpha())
    return label.replace("_", "").replace(" ", "")


def box_iou(a, b) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    if right <= left or bottom <= top:
        return 0.0
    inter = (right - left) * (bottom - top)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def polygon_iou(a, b) -> float:
    try:
        from shapely.geometry import Polygon
    except ImportError:
        raise Unsupported("polygon tasks need shapely (pip install shapely)") from None
    try:
        if len(a) < 6 or len(b) < 6:
            return 0.0
        pa = Polygon([(a[i], a[i + 1]) for i in range(0, len(a), 2)])
        pb = Polygon([(b[i], b[i + 1]) for i in range(0, len(b), 2)])
        if not pa.is_valid or not pb.is_valid:
            return 0.0
        union = pa.union(pb).area
        return 0.0 if union == 0 else pa.intersection(pb).area / union
    except Exception:  # noqa: BLE001 - the official script scores any geometry error as 0
        return 0.0


def point_in_box(point, box) -> bool:
    if len(point) != 2 or len(box) != 4:
        return False
    x, y = point
    x1, x2 = min(box[0], box[2]), max(box[0], box[2])
    y1, y2 = min(box[1], box[3]), max(box[1], box[3])
    return x1 <= x <= x2 and y1 <= y <= y2


def box_centre(box) -> list:
    if len(box) != 4:
        return []
    x1, x2 = min(box[0], box[2]), max(box[0], box[2])
    y1, y2 = min(box[1], box[3]), max(box[1], box[3])
    return [(x1 + x2) / 2, (y1 + y2) / 2]


def _points_and_boxes(preds) -> tuple[list, list]:
    points: list[list[float]] = []
    boxes: list[list[float]] = []
    if not isinstance(preds, dict):
        return points, boxes
    for value in preds.values():
        if not isinstance(value, list):
            continue
        for c in value:
            if not isinstance(c, list):
                continue
            try:
                if len(c) == 2:
                    points.append([float(c[0]), float(c[1])])
                elif len(c) == 4:
                    boxes.append([float(v) for v in c])
            except (TypeError, ValueError):
                continue
    return points, boxes


def gui_hit(gt_box, preds) -> bool:
    """A predicted point in the ground-truth box, or a predicted box whose centre is in it."""
    points, boxes = _points_and_boxes(preds)
    if not points and not boxes:
        return False
    if not gt_box or len(gt_box) != 4:
        return False
    if any(point_in_box(p, gt_box) for p in points):
        return True
    return any(box_centre(b) and point_in_box(box_centre(b), gt_box) for b in boxes)


# ---------------------------------------------------------------- per-record scores

def _greedy_matches(gts: list, preds: list, threshold: float, iou=box_iou) -> int:
    used: set = set()
    matches = 0
    for g in gts:
        best, best_iou = -1, 0
        for i, p in enumerate(preds):
            if i in used:
                continue
            value = iou(g, p)
            if value > best_iou and value >= threshold:
                best, best_iou = i, value
        if best != -1:
            matches += 1
            used.add(best)
    return matches


def detection_scores(gt: dict, preds: dict, threshold: float, polygon: bool = False) -> tuple:
    """(recall, precision, gt count, prediction count) of one record's labelled boxes."""
    n_gt = sum(len(v) for v in gt.values())
    n_pred = sum(len([b for b in v if b is not None and b != "None"]) for v in preds.values())
    if len(gt) == 0:
        return (1.0, 1.0, n_gt, n_pred) if n_pred == 0 else (0.0, 0.0, n_gt, n_pred)
    if n_pred == 0:
        return 0.0, 0.0, n_gt, n_pred
    all_gt: list = []
    all_pred: list = []
    for label, boxes in gt.items():
        all_gt.extend(boxes)
        all_pred.extend(b for b in preds.get(label, []) if b is not None and b != "None")
    matches = _greedy_matches(all_gt, all_pred, threshold, polygon_iou if polygon else box_iou)
    return (matches / n_gt if n_gt > 0 else 0.0), (matches / n_pred if n_pred > 0 else 0.0), n_gt, n_pred


def _decode_mask(item):
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise Unsupported("mask ground truth needs pycocotools (pip install pycocotools)") from None
    import numpy as np

    try:
        return mask_utils.decode({"counts": item["counts"].encode("utf-8"), "size": item["size"]})
    except Exception:  # noqa: BLE001 - the official script reads an undecodable mask as empty
        h, w = item["size"]
        return np.zeros((h, w), dtype=np.uint8)


def _point_in_mask(point, mask) -> bool:
    x, y = int(point[0]), int(point[1])
    if x < 0 or y < 0 or y >= mask.shape[0] or x >= mask.shape[1]:
        return False
    return mask[y, x] == 1


def pointing_scores(gt: dict, preds: dict) -> tuple:
    """(recall, precision, gt count, prediction count): each ground-truth box / mask takes the first
    unused predicted point of its label inside it."""
    n_gt = sum(len(v) for v in gt.values())
    n_pred = sum(len(v) for v in preds.values())
    if n_gt == 0:
        return (1.0, 1.0, n_gt, n_pred) if n_pred == 0 else (0.0, 0.0, n_gt, n_pred)
    if n_pred == 0:
        return 0.0, 0.0, n_gt, n_pred
    use_boxes = None
    for items in gt.values():
        if not isinstance(items, list) or not items:
            continue
        for item in items:
            if isinstance(item, list) and len(item) == 4:
                use_boxes = True
                break
            if isinstance(item, dict) and "counts" in item and "size" in item:
                use_boxes = False
                break
        if use_boxes is not None:
            break
    if use_boxes is None:
        use_boxes = True
    targets: list[tuple] = []  # (label, box or decoded mask)
    for label, items in gt.items():
        if not isinstance(items, list):
            continue
        for item in items:
            if use_boxes and isinstance(item, list) and len(item) == 4:
                targets.append((label, item))
            elif not use_boxes and isinstance(item, dict) and "counts" in item and "size" in item:
                targets.append((label, item))
    if not use_boxes:
        targets = [(label, _decode_mask(item)) for label, item in targets]
    candidates = [(label, p) for label, points in preds.items() for p in points]
    used: set = set()
    matches = 0
    for label, target in targets:
        for j, (p_label, point) in enumerate(candidates):
            if j in used or p_label != label:
                continue
            hit = point_in_box(point, target) if use_boxes else _point_in_mask(point, target)
            if hit:
                used.add(j)
                matches += 1
                break
    return matches / n_gt, matches / n_pred, n_gt, n_pred


def _wrong_rejection(preds: dict) -> bool:
    for items in preds.values():
        if not items:
            continue
        for p in items:
            if p is None or (isinstance(p, str) and p.lower() == "none"):
                return True
    return False


def score_record(record: dict, threshold: float) -> dict:
    """Scores of one record at one IoU threshold: recall, precision, gt_count, pred_count, and the extras
    (correct for gui / hallucination, mae, instruction_following, wrong_rejection). Raises where the
    official script does (the record is then left out) and Unsupported for what is not scored here."""
    task = record["task_name"]
    record["dataset_name"]  # noqa: B018 - required, as in the official script
    gt = record["gt"]
    preds = record["extracted_predictions"]
    if task == "gui":
        if isinstance(preds, dict):
            preds = {k.lower(): v for k, v in preds.items()}
    else:
        if isinstance(gt, dict):
            gt = {k.lower(): v for k, v in gt.items()}
        else:
            gt = {"default": gt} if isinstance(gt, list) else {}
        preds = {k.lower(): v for k, v in preds.items()} if isinstance(preds, dict) else {}
    out: dict = {}
    if task == "referring_object_detection":
        all_gt = [b for boxes in gt.values() for b in boxes]
        all_pred = [b for boxes in preds.values() for b in boxes]
        n_gt, n_pred = len(all_gt), len(all_pred)
        if n_gt == 0:
            recall = precision = 1.0 if n_pred == 0 else 0.0
        elif n_pred == 0:
            recall = precision = 0.0
        else:
            m = _greedy_matches(all_gt, all_pred, threshold)
            recall, precision = m / n_gt, m / n_pred
    elif task in POLYGON_TASKS:
        recall, precision, n_gt, n_pred = detection_scores(
            {_norm_label(k, task): v for k, v in gt.items()}, {_norm_label(k, task): v for k, v in preds.items()},
            threshold, polygon=True)
    elif task == "pointing":
        recall, precision, n_gt, n_pred = pointing_scores(gt, preds)
    elif task == "pointing_referring":
        if preds:  # the first predicted label is read as the first ground-truth one
            if not gt:
                raise ValueError("pointing_referring record with predictions and no ground truth")
            renamed = {next(iter(gt)): preds[next(iter(preds))]}
        else:
            renamed = preds
        recall, precision, n_gt, n_pred = pointing_scores(gt, renamed)
    elif task == "keypoint":
        raise Unsupported("keypoint tasks are not scored by locateanything metrics")
    elif task == "hallucination":
        n_pred = sum(len(v) for v in preds.values())
        recall = precision = 1.0 if n_pred == 0 else 0.0
        n_gt = 0
        out["correct"] = recall
    elif task == "gui":
        correct = gui_hit(record.get("gt", []), preds)
        recall = precision = 1.0 if correct else 0.0
        n_gt = 1
        n_pred = sum(len(v) for v in preds.values())
        out["correct"] = recall
    else:
        recall, precision, n_gt, n_pred = detection_scores(
            {_norm_label(k, task): v for k, v in gt.items()}, {_norm_label(k, task): v for k, v in preds.items()},
            threshold)
    out.update(recall=recall, precision=precision, gt_count=n_gt, pred_count=n_pred)
    if task != "hallucination":
        out["wrong_rejection"] = 1 if _wrong_rejection(preds) else 0
    if task == "visual_prompt_detection":
        out["mae"] = abs(n_pred - n_gt)
    gt_labels = set() if task == "gui" else set(gt.keys())
    pred_labels = set(preds.keys())
    if task in NORMALISED_FOLLOWING_TASKS:
        pred_norm = {_norm_label(c, task) for c in pred_labels}
        gt_norm = {_norm_label(c, task): c for c in gt_labels}
        matching = {orig for norm, orig in gt_norm.items() if norm in pred_norm}
    else:
        matching = gt_labels & pred_labels
    if not gt_labels:
        out["instruction_following"] = 1.0 if not pred_labels else 0.0
    else:
        out["instruction_following"] = len(matching) / len(gt_labels)
    return out


# ---------------------------------------------------------------- aggregation

def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if (p + r) > 0 else 0.0


def load_records(path: str) -> list[dict]:
    with open(path, "r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def box_metrics(records: Iterable[dict], iou_thresholds: Optional[list] = None, auto_detect_pointing: bool = True,
                include_errors: bool = False) -> dict:
    """Per-group metrics as other_metric.py reports them (see the module docstring). Returns
    `{"iou_thresholds", "records", "errors_skipped", "not_scored": {reason: count}, "groups": {key: {...}}}`
    where each group has task_name, dataset_name, samples, by_iou `{threshold: {precision, recall, f1}}`,
    iou_50, iou_95, mean, and where they apply gui_accuracy, hallucination_accuracy,
    instruction_following, wrong_rejection, mae; pointing groups (key "pointing_…") report one
    precision / recall / F1."""
    records = list(records)
    skipped_errors = sum(1 for r in records if "error" in r)
    if not include_errors:
        records = [r for r in records if "error" not in r]
    samples = []
    for r in records:
        r = dict(r)
        if "task_name" not in r:
            r["task_name"] = "referring_object_detection"
        samples.append(r)
    thresholds = list(iou_thresholds or DEFAULT_IOU_THRESHOLDS)
    if auto_detect_pointing and any(s.get("task_name") in POINTING_TASKS for s in samples):
        thresholds = [0.5]
    not_scored: dict = defaultdict(int)
    # key -> threshold -> list of per-record score dicts
    per_key: dict = defaultdict(lambda: defaultdict(list))
    meta: dict = {}

    def score_at(sample, threshold, reasons):
        try:
            return score_record(sample, threshold)
        except Unsupported as exc:
            reasons.add(str(exc))
        except Exception as exc:  # noqa: BLE001 - the official script skips such records
            reasons.add(f"{type(exc).__name__} (left out, as the official script does)")
        return None

    for sample in samples:
        task = sample["task_name"]
        key = f"{task}_{sample.get('dataset_name')}"
        reasons: set = set()
        single = score_at(sample, 0.5, reasons) if task in SINGLE_PASS_TASKS else None
        for t in thresholds:
            # Single-pass tasks are scored once at 0.5, the same at every threshold.
            s = single if task in SINGLE_PASS_TASKS else score_at(sample, t, reasons)
            if s is not None:
                per_key[key][t].append(s)
                meta.setdefault(key, (task, sample.get("dataset_name")))
        for reason in reasons:
            not_scored[reason] += 1
    groups = {}
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    for key, by_t in per_key.items():
        task, dataset = meta[key]
        by_iou = {}
        for t, scores in by_t.items():
            if not scores:
                continue
            p = mean(s["precision"] for s in scores)
            r = mean(s["recall"] for s in scores)
            by_iou[t] = {"precision": p, "recall": r, "f1": _f1(p, r), "samples": len(scores)}
        if not by_iou:
            continue
        all_scores = [s for t in by_iou for s in by_t[t]]
        group = {
            "task_name": task,
            "dataset_name": dataset,
            "samples": max(v["samples"] for v in by_iou.values()),
            "pointing": key.startswith("pointing_"),
            "by_iou": by_iou,
            "iou_50": dict(by_iou.get(0.5, zero)),
            "iou_95": dict(by_iou.get(0.95, zero)),
            "mean": {m: mean(v[m] for v in by_iou.values()) for m in ("precision", "recall", "f1")},
            "instruction_following": mean(s["instruction_following"] for s in all_scores),
        }
        if group["pointing"]:
            first = next(iter(by_iou.values()))
            group["point"] = {m: first[m] for m in ("precision", "recall", "f1")}
        if task == "gui":
            group["gui_accuracy"] = mean(s["correct"] for s in all_scores)
        if task == "hallucination":
            group["hallucination_accuracy"] = mean(s["correct"] for s in all_scores)
        rejections = [s["wrong_rejection"] for s in all_scores if "wrong_rejection" in s]
        if rejections:
            group["wrong_rejection"] = sum(rejections) / len(rejections)
        maes = [s["mae"] for s in all_scores if "mae" in s]
        if maes:
            group["mae"] = mean(maes)
        groups[key] = group
    return {"iou_thresholds": thresholds, "records": len(samples),
            "errors_skipped": 0 if include_errors else skipped_errors, "not_scored": dict(not_scored), "groups": groups}


def format_box_table(result: dict) -> str:
    groups = result["groups"]
    width = min(max([len(k) for k in groups] + [20]) + 2, 60)

    def prf(m):
        return f"P:{m['precision']:.3f} R:{m['recall']:.3f} F1:{m['f1']:.3f}"

    head = f"{'task_dataset':<{width}} | {'n':>6} | {'IoU=0.5':<25} | {'IoU=0.95':<25} | {'mean IoU 0.5:0.95':<25} | " \
           f"{'GUI acc':<8} | {'Halluc':<8} | {'InstFollow':<10} | {'WrongRej':<8}"
    lines = [head, "-" * len(head)]
    for key, g in groups.items():
        if g["pointing"]:
            cells = [prf(g["point"]), "n/a", "n/a"]
        else:
            cells = [prf(g["iou_50"]), prf(g["iou_95"]), prf(g["mean"])]
        gui = f"{g['gui_accuracy']:.4f}" if "gui_accuracy" in g else "-"
        hal = f"{g['hallucination_accuracy']:.4f}" if "hallucination_accuracy" in g else "-"
        wr = f"{g['wrong_rejection']:.4f}" if "wrong_rejection" in g else "-"
        lines.append(f"{key:<{width}} | {g['samples']:>6} | {cells[0]:<25} | {cells[1]:<25} | {cells[2]:<25} | "
                     f"{gui:<8} | {hal:<8} | {g['instruction_following']:<10.4f} | {wr:<8}")
    notes = [f"IoU thresholds: {', '.join(str(t) for t in result['iou_thresholds'])}"]
    if result["errors_skipped"]:
        notes.append(f"{result['errors_skipped']} error records left out (rows that could not run)")
    for reason, n in result["not_scored"].items():
        notes.append(f"not scored: {n} × {reason}")
    return "\n".join(lines + notes)


# ---------------------------------------------------------------- ScreenSpot-Pro

def _source_from_name(name) -> str:
    if not isinstance(name, str):
        return "Unknown"
    for prefix, source in (("pc_", "Desktop"), ("mobile_", "Mobile"), ("web_", "Web")):
        if name.startswith(prefix):
            return source
    return "Unknown"


def load_type_mapping(path: Optional[str]) -> dict:
    """`{img_filename: {"source", "type"}}` from a JSONL (data_source / data_type, else group / ui_type)."""
    mapping: dict = {}
    if not path or not os.path.exists(path):
        return mapping
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            name = row.get("img_filename", "")
            if not name:
                continue
            dtype, dsource, ui_type, group = (row.get("data_type"), row.get("data_source"), row.get("ui_type"),
                                              row.get("group"))
            if dtype and dsource:
                mapping[name] = {"source": dsource, "type": dtype}
            elif ui_type and group:
                mapping[name] = {"source": group, "type": ui_type}
            else:
                mapping[name] = {"source": dsource or group or "Unknown", "type": dtype or ui_type or "Unknown"}
    return mapping


def sspro_metrics(records: Iterable[dict], type_mapping: Optional[dict] = None, include_errors: bool = False) -> dict:
    """`{"overall_accuracy", "total_correct", "total_count", "category_accuracies": {"source-type": {...}},
    "errors_skipped"}` as sspro_metric.py computes them."""
    total = correct_total = 0
    skipped = 0
    stats: dict = defaultdict(lambda: {"correct": 0, "total": 0})
    for record in records:
        if "error" in record and not include_errors:
            skipped += 1
            continue
        try:
            preds = record.get("extracted_predictions", {})
            gt = record.get("gt", [])
            dtype = record.get("data_type", "")
            name = record.get("image_name", "")
            if not name and record.get("image_path"):
                name = os.path.basename(record["image_path"])
            source = _source_from_name(name)
            if type_mapping and name:
                info = type_mapping.get(name, {})
                if not dtype or dtype == "Unknown":
                    dtype = info.get("type", dtype or "Unknown")
                if source == "Unknown":
                    source = info.get("source", source)
            correct = gui_hit(gt, preds)
        except Exception:  # noqa: BLE001 - the official script counts such a record as wrong
            correct, dtype, source = False, "Unknown", "Unknown"
        total += 1
        correct_total += int(correct)
        key = f"{source}-{dtype}"
        stats[key]["total"] += 1
        stats[key]["correct"] += int(correct)
    return {
        "overall_accuracy": correct_total / total if total else 0.0,
        "total_correct": correct_total,
        "total_count": total,
        "category_accuracies": {k: {"accuracy": v["correct"] / v["total"] if v["total"] else 0.0, **v}
                                for k, v in stats.items()},
        "errors_skipped": skipped,
    }


def format_sspro_table(result: dict) -> str:
    lines = [f"ScreenSpot-Pro accuracy: {result['overall_accuracy']:.4f} "
             f"({result['total_correct']}/{result['total_count']})",
             f"{'source-type':<28} {'accuracy':<10} correct/total"]
    for key in sorted(result["category_accuracies"]):
        v = result["category_accuracies"][key]
        lines.append(f"{key:<28} {v['accuracy']:<10.4f} {v['correct']}/{v['total']}")
    if result["errors_skipped"]:
        lines.append(f"{result['errors_skipped']} error records left out (rows that could not run)")
    return "\n".join(lines)


def is_sspro(records: list) -> bool:
    first = next((r for r in records if "error" not in r), records[0] if records else None)
    if not first:
        return False
    return "image_name" in first and "instruction" in first and "task_name" not in first


# ---------------------------------------------------------------- COCO AP (optional)

def coco_ap(records: Iterable[dict], coco_json: str, positive_only: bool = True) -> dict:
    """COCO bbox AP of the records' boxes through pycocotools (the model's scores where the records have
    them, else 0.2), on the images the records cover. Raises Unsupported without pycocotools."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise Unsupported("COCO AP needs pycocotools (pip install pycocotools)") from None
    import contextlib
    import io

    from .export import CocoIndex, coco_results

    records = [r for r in records if "error" not in r]
    with open(coco_json, "r", encoding="utf-8") as f:
        data = json.load(f)
    index = CocoIndex(data)
    dets = coco_results(records, index=index, positive_only=positive_only)
    image_ids = sorted({index.image_id(r) for r in records})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        ev.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    return {"stats": dict(zip(names, (float(v) for v in ev.stats))), "summary": text.getvalue(),
            "images": len(image_ids), "detections": len(dets)}
