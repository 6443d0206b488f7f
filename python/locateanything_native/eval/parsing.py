"""The evaluation scripts' answer parsing and coordinate rules, in one place.

Every consumer in this package parses answers through `parse_prediction` (the runner, the COCO / FastEval
exports, `locateanything_native.coco.extract_predictions`), so there is one set of rules:

* An item counts only inside a labelled run: `<ref>label</ref>` (label: any text without `<`) directly
  followed by one or more `<box>…</box>`. Boxes with no ref before them, or after plain text, are dropped.
* Inside a run, two-value boxes `<box><x><y></box>` are points and four-value boxes are boxes. Each value
  is `< n >` with optional spaces, an integer or a decimal; an item with any value above 10000 is dropped;
  `<box>none</box>` and malformed boxes are skipped. A run lists its points first, then its boxes (the
  grounding script's order); the detection script reads boxes only (`points=False`).
* Normalised 0–1000 values become pixels as `v * size / 1000`, clamped to `[0, size - 1]` with Python's
  `max(0, min(value, size - 1))`: a clamped value is the int `0` or `size - 1`, as in the scripts' JSON.
  Box corners are then put in order (`x1 <= x2`, `y1 <= y2`).
* Labels are kept as written; the dict lists them in order of first appearance.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import _core


class Item(NamedTuple):
    """One labelled point or box of an answer."""

    label: str
    values: list  # 2 (point) or 4 (box) normalised floats, as written
    is_point: bool
    start: int  # byte offset of its "<box>" in the UTF-8 answer
    pixels: list  # in pixels of the image the answer was parsed for (clamped values are ints)


def normalize_categories(categories) -> list[str]:
    """The grounding script's category list: a str is split on commas (parts stripped, empty parts
    dropped, duplicates kept); a list/tuple has each str element split the same way, other elements
    turned into str, None elements skipped, and duplicates removed keeping the first; None gives [];
    anything else becomes [str(value)]."""
    if categories is None:
        return []
    if isinstance(categories, str):
        return [part.strip() for part in categories.split(",") if part.strip()]
    if isinstance(categories, (list, tuple)):
        flat: list[str] = []
        for element in categories:
            if element is None:
                continue
            if isinstance(element, str):
                flat.extend(part.strip() for part in element.split(",") if part.strip())
            else:
                flat.append(str(element))
        return list(dict.fromkeys(flat))
    return [str(categories)]


def parse_items(text: str, w, h, *, points: bool = True) -> list[Item]:
    """The labelled items of an answer in the order the scripts list them (per run: points, then boxes),
    with pixels of a w × h image. The package's one parser does the work (`_core.parse_answer`, rule
    "eval", or "eval_boxes" for the detection script's boxes-only reading)."""
    return [Item(d["label"], d["values"], d["kind"] == "point", d["start"], d["pixels"])
            for d in _core.parse_answer(text, w, h, "eval" if points else "eval_boxes")]


def parse_prediction(text: str, w, h, *, points: bool = True) -> dict[str, list[list]]:
    """`{label: [[x, y] | [x1, y1, x2, y2], ...]}` in pixels of a w × h image: the scripts' `parse_prediction`
    (`points=True`: inference_grounding_ddp.py and inference_sspro_ddp.py; `points=False`:
    inference_detection_ddp.py, which reads boxes only). See the module docstring for the rules."""
    result: dict[str, list[list]] = {}
    for item in parse_items(text, w, h, points=points):
        result.setdefault(item.label, []).append(item.pixels)
    return result


def parse_with_scores(text: str, w, h, result=None, *, points: bool = True) -> tuple[dict, dict]:
    """`parse_prediction` plus `{label: [score | None, ...]}` aligned with it item for item.

    Scores come from the engine's Result (`result.boxes` / `result.points`, each dict's "score": the
    geometric mean of its coordinate tokens' probabilities); an item is matched to the engine's item that
    starts at the same `<box>`. Items the engine did not see (no result, or a result without scores)
    get None."""
    items = parse_items(text, w, h, points=points)
    preds: dict[str, list[list]] = {}
    scores: dict[str, list] = {}
    engine_boxes = list(getattr(result, "boxes", None) or []) if result is not None else []
    engine_points = list(getattr(result, "points", None) or []) if result is not None else []
    # The engine's items (worker rule: Result.boxes / Result.points, in answer order) by the byte offset
    # of their "<box>", the same offsets the eval rule reports.
    slots: dict[tuple[bool, int], int] = {}
    counts = {True: 0, False: 0}
    for d in _core.parse_answer(text, w, h, "worker"):
        if d["kind"] != "none":
            is_point = d["kind"] == "point"
            slots[(is_point, d["start"])] = counts[is_point]
            counts[is_point] += 1
    for item in items:
        preds.setdefault(item.label, []).append(item.pixels)
        slot = slots.get((item.is_point, item.start))
        pool = engine_points if item.is_point else engine_boxes
        score = None
        if slot is not None and slot < len(pool) and isinstance(pool[slot], dict):
            score = _clean_score(pool[slot].get("score"))
        scores.setdefault(item.label, []).append(score)
    return preds, scores


def _clean_score(value):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value  # NaN (unknown) -> None: JSON has no NaN


def resize_image_short_side(image, short_side_size: int):
    """The scripts' `--short_side_size`: the short side becomes `short_side_size` (the long side
    `int(long * scale)`), Pillow BILINEAR. Returns (resized image, scale = resized / original)."""
    from PIL import Image

    w, h = image.size
    if w <= h:
        scale = short_side_size / w
        new_size = (short_side_size, int(h * scale))
    else:
        scale = short_side_size / h
        new_size = (int(w * scale), short_side_size)
    # Pillow sets the legacy constants at import time (invisible to its stubs); Image.Resampling needs >= 9.1.
    return image.resize(new_size, Image.BILINEAR), scale  # type: ignore[attr-defined]


def scale_back(preds: dict, scale_factor) -> dict:
    """Pixels of the resized image → pixels of the original: every value divided by `scale_factor`
    (the grounding script's `scale_predictions`; unchanged when the factor is None or 1.0). Items that
    are not 2- or 4-value lists are dropped."""
    if scale_factor is None or scale_factor == 1.0:
        return preds
    out: dict[str, list] = {}
    for label, coords in preds.items():
        kept = []
        for c in coords:
            if isinstance(c, (list, tuple)) and len(c) in (2, 4):
                kept.append([v / scale_factor for v in c])
        out[label] = kept
    return out

