"""Detections for COCO / LVIS scoring from evaluation records.

`write_fasteval_tsv` writes what utils/convert_coco_lvis_to_standard_format.py writes for
metrics/coco_lvis_metric.py (FastEval): one line per record, `image_id<TAB>[{"class", "conf", "rect"}]`,
with the same rules: the image is looked up by the base name of `image_path` among the annotation
file's `images[].file_name` (an unknown image is an error), a label counts when
`label.lower().replace("_", " ")` equals a category name normalised the same way, only four-value items
(boxes) count, `rect` is `[x1, y1, w, h]`, `class` is the category's name as in the annotation file, and
(`positive_only`, always on in the official converter) an image with ground truth keeps only the
categories it has. A later record of the same image replaces an earlier one. Where the official
converter writes the constant `conf` 0.2, ours writes the model's confidence for the box (the record's
`scores`) when there is one, else 0.2. Error records are skipped (the official scripts never write them).

`coco_results` gives the same detections as a COCO results list (`image_id`, `category_id`, `bbox`,
`score`) for pycocotools.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Optional

OFFICIAL_CONF = 0.2


class CocoIndex:
    def __init__(self, coco: dict):
        self.name_to_id = {str(c["name"]).lower().replace("_", " "): c["id"] for c in coco["categories"]}
        self.id_to_name = {c["id"]: c["name"] for c in coco["categories"]}
        self.path_to_id = {os.path.basename(img["file_name"]): img["id"] for img in coco["images"]}
        self.gt_categories: dict = {}
        for ann in coco.get("annotations", []):
            self.gt_categories.setdefault(ann["image_id"], set()).add(ann["category_id"])

    @classmethod
    def load(cls, path: str) -> "CocoIndex":
        with open(path, "r", encoding="utf-8") as f:
            return cls(json.load(f))

    def image_id(self, record: dict):
        name = os.path.basename(record.get("image_path") or record.get("image_name") or "")
        if name not in self.path_to_id:
            raise ValueError(f"image {name!r} is not in the annotation file's images")
        return self.path_to_id[name]


def detections(records: Iterable[dict], index: CocoIndex, positive_only: bool = True) -> dict:
    """`{image_id: [(category_id, [x1, y1, w, h], conf), ...]}` in record order (see the module docstring)."""
    out: dict = {}
    for record in records:
        if "error" in record:
            continue
        image_id = index.image_id(record)
        scores = record.get("scores") or {}
        entries = []
        for label, coords in (record.get("extracted_predictions") or {}).items():
            cat_id = index.name_to_id.get(str(label).lower().replace("_", " "))
            if cat_id is None:
                continue
            label_scores = scores.get(label) or []
            for i, c in enumerate(coords):
                if not isinstance(c, (list, tuple)) or len(c) != 4:
                    continue
                if positive_only and image_id in index.gt_categories and cat_id not in index.gt_categories[image_id]:
                    continue
                x1, y1, x2, y2 = c
                conf = label_scores[i] if i < len(label_scores) and label_scores[i] is not None else OFFICIAL_CONF
                entries.append((cat_id, [x1, y1, x2 - x1, y2 - y1], conf))
        out[image_id] = entries
    return out


def write_fasteval_tsv(records: Iterable[dict], coco_json: str, out_tsv: str, positive_only: bool = True) -> int:
    """Writes the FastEval TSV; returns the number of boxes."""
    index = CocoIndex.load(coco_json)
    dets = detections(records, index, positive_only)
    parent = os.path.dirname(os.path.abspath(out_tsv))
    os.makedirs(parent, exist_ok=True)
    n = 0
    with open(out_tsv, "w", encoding="utf-8") as f:
        for image_id, entries in dets.items():
            items = [{"class": index.id_to_name[cat_id], "conf": conf, "rect": rect} for cat_id, rect, conf in entries]
            n += len(items)
            f.write(f"{image_id}\t{json.dumps(items, ensure_ascii=False)}\n")
    return n


def coco_results(records: Iterable[dict], coco_json: Optional[str] = None, index: Optional[CocoIndex] = None,
                 positive_only: bool = True) -> list[dict]:
    if index is None:
        if coco_json is None:
            raise TypeError("coco_results needs coco_json or index")
        index = CocoIndex.load(coco_json)
    return [{"image_id": image_id, "category_id": cat_id, "bbox": [float(v) for v in rect], "score": float(conf)}
            for image_id, entries in detections(records, index, positive_only).items()
            for cat_id, rect, conf in entries]
