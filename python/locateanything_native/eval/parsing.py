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

import re
from typing import NamedTuple

_VALUE = r"<\s*([0-9]+(?:\.[0-9]+)?)\s*>\s*"
REF_RUN_RE = re.compile(r"<ref>([^<]+)</ref>((?:<box>.*?</box>)+)")
POINT_RE = re.compile(r"<box>\s*" + _VALUE * 2 + r"</box>")
BOX_RE = re.compile(r"<box>\s*" + _VALUE * 4 + r"</box>")
MAX_VALUE = 10000

# How the engine's own parser (Result.boxes / Result.points) recognises items: plain `<digits>` values.
_ENGINE_BOX_RE = re.compile(r"<box><(\d{1,7})><(\d{1,7})><(\d{1,7})><(\d{1,7})></box>")
_ENGINE_POINT_RE = re.compile(r"<box><(\d{1,7})><(\d{1,7})></box>")


class Item(NamedTuple):
    """One labelled point or box of an answer, before conversion to pixels."""

    label: str
    values: list  # 2 (point) or 4 (box) normalised floats
    is_point: bool
    start: int  # offset of its "<box>" in the answer


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


def parse_items(text: str, points: bool = True) -> list[Item]:
    """The labelled items of an answer in the order the scripts list them (per run: points, then boxes)."""
    items: list[Item] = []
    for run in REF_RUN_RE.finditer(text):
        label, body, offset = run.group(1), run.group(2), run.start(2)
        kinds = ((POINT_RE, True), (BOX_RE, False)) if points else ((BOX_RE, False),)
        for pattern, is_point in kinds:
            for m in pattern.finditer(body):
                values = [float(g) for g in m.groups()]
                if all(0 <= v <= MAX_VALUE for v in values):
                    items.append(Item(label, values, is_point, offset + m.start()))
    return items


def _clamp(value, size):
    # Python's max/min keep the int bound when it wins, as the scripts' JSON shows (0, not 0.0).
    return max(0, min(value, size - 1))


def point_to_pixels(values, width, height) -> list:
    x, y = values
    return [_clamp(x * width / 1000, width), _clamp(y * height / 1000, height)]


def box_to_pixels(values, width, height) -> list:
    x1, y1, x2, y2 = values
    x1, x2 = _clamp(x1 * width / 1000, width), _clamp(x2 * width / 1000, width)
    y1, y2 = _clamp(y1 * height / 1000, height), _clamp(y2 * height / 1000, height)
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def item_to_pixels(item: Item, width, height) -> list:
    return point_to_pixels(item.values, width, height) if item.is_point else box_to_pixels(item.values, width, height)


def parse_prediction(text: str, w, h, *, points: bool = True) -> dict[str, list[list]]:
    """`{label: [[x, y] | [x1, y1, x2, y2], ...]}` in pixels of a w × h image: the scripts' `parse_prediction`
    (`points=True`: inference_grounding_ddp.py and inference_sspro_ddp.py; `points=False`:
    inference_detection_ddp.py, which reads boxes only). See the module docstring for the rules."""
    result: dict[str, list[list]] = {}
    for item in parse_items(text, points=points):
        result.setdefault(item.label, []).append(item_to_pixels(item, w, h))
    return result


def parse_with_scores(text: str, w, h, result=None, *, points: bool = True) -> tuple[dict, dict]:
    """`parse_prediction` plus `{label: [score | None, ...]}` aligned with it item for item.

    Scores come from the engine's Result (`result.boxes` / `result.points`, each dict's "score": the
    geometric mean of its coordinate tokens' probabilities); an item is matched to the engine's item that
    starts at the same `<box>`. Items the engine did not see (no result, or a result without scores)
    get None."""
    items = parse_items(text, points=points)
    preds: dict[str, list[list]] = {}
    scores: dict[str, list] = {}
    engine_boxes = list(getattr(result, "boxes", None) or []) if result is not None else []
    engine_points = list(getattr(result, "points", None) or []) if result is not None else []
    box_slot = {m.start(): i for i, m in enumerate(_ENGINE_BOX_RE.finditer(text))}
    point_slot = {m.start(): i for i, m in enumerate(_ENGINE_POINT_RE.finditer(text))}
    for item in items:
        preds.setdefault(item.label, []).append(item_to_pixels(item, w, h))
        slot = (point_slot if item.is_point else box_slot).get(item.start)
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
    return image.resize(new_size, Image.BILINEAR), scale


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

