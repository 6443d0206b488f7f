"""COCO-style detections from answers, following the official evaluation scripts.

    from locateanything_native.coco import to_coco
    dets = to_coco(results, image_ids=[139, 285], category_map={"person": 1, "car": 3})
    json.dump(dets, open("detections.json", "w"))   # [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]

The official pipeline (Embodied/evaluation) goes answer → `extracted_predictions` (inference_detection_ddp.py
and inference_grounding_ddp.py, `parse_prediction`) → detections (utils/convert_coco_lvis_to_standard_format.py).
This module reproduces both steps (the parsing rules live in `locateanything_native.eval.parsing`, shared by
the evaluation runner):

* Only boxes that follow a label count: `<ref>label</ref>` then one or more `<box>…</box>`. Boxes without a
  ref before them (and anything after a non-box token) are dropped, as the official regex does.
* A box has four coordinates `<x1><y1><x2><y2>` (whitespace inside `< n >` allowed, integers or decimals, each
  in [0, 10000]). `<box>none</box>` and malformed boxes are skipped. Two-coordinate points are kept by
  `extract_predictions(..., points=True)` (the grounding script's behaviour) but never become detections: the
  official converter unpacks four values and skips anything else.
* Pixel = v · size / 1000, clamped to [0, W − 1] × [0, H − 1], then the corners are reordered so that
  x1 ≤ x2 and y1 ≤ y2. The size is that of the image the answer refers to (normalised coordinates are
  relative to the whole image, so use the original size even if the model saw a downscaled copy).
* A label is looked up as `label.lower().replace("_", " ")` against category names normalised the same way;
  labels with no category are dropped (no fuzzy matching, no stripping of spaces).
* `bbox` is `[x1, y1, x2 − x1, y2 − y1]`. `score` is the box's own confidence when the result is an engine
  Result (the geometric mean of its coordinate tokens' probabilities), else the official converter's
  constant 0.2; `score=` sets one value for every box.
* The official converter keeps, by default, only categories that the image's ground truth contains
  (`--positive_only`); pass `gt_categories={image_id: [category ids]}` to do the same. Off otherwise.

Detections are listed per image in input order, then per label in order of first appearance, then per box.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .eval.parsing import parse_prediction, parse_with_scores

OFFICIAL_SCORE = 0.2


def extract_predictions(answer: str, width: float, height: float, points: bool = False) -> dict[str, list[list[float]]]:
    """`{label: [[x1, y1, x2, y2], ...]}` in pixels of a width × height image, as the official `parse_prediction`.

    With `points=True` two-coordinate answers are kept too, as `[x, y]` (the grounding script lists a ref's
    points before its boxes). This is `locateanything_native.eval.parse_prediction`, the package's one parser
    (a value clamped to the image edge is the int 0 or size − 1, as in the official records)."""
    return parse_prediction(answer, width, height, points=points)


def _normalise(name: str) -> str:
    return str(name).lower().replace("_", " ")


def category_ids(category_map) -> dict[str, int]:
    """Normalised name → id from `{name: id}`, a COCO `categories` list (`[{"id", "name"}]`) or a whole COCO
    annotation dict (its "categories")."""
    if isinstance(category_map, Mapping) and "categories" in category_map and isinstance(category_map["categories"], list):
        category_map = category_map["categories"]
    if isinstance(category_map, Mapping):
        return {_normalise(k): int(v) for k, v in category_map.items()}
    out = {}
    for cat in category_map:
        if not isinstance(cat, Mapping) or "id" not in cat or "name" not in cat:
            raise ValueError(f"category_map entries must be {{'id', 'name'}} dicts, got {cat!r}")
        out[_normalise(cat["name"])] = int(cat["id"])
    return out


def _answer_and_size(item, size) -> tuple[str | None, dict | None, float, float]:
    """(answer, ready extracted_predictions or None, width, height) of one result in any accepted form."""
    if isinstance(item, str):
        answer, extracted, w, h = item, None, None, None
    elif isinstance(item, Mapping):
        answer = item.get("answer", item.get("raw_response"))
        extracted = item.get("extracted_predictions")
        w, h = item.get("width"), item.get("height")
        if w is None and item.get("image_size") is not None:
            w, h = item["image_size"]
        if answer is None and extracted is None:
            raise ValueError("a result dict needs 'answer' (worker / CLI) or 'extracted_predictions' (official record)")
    elif hasattr(item, "answer"):  # an engine Result
        answer, extracted = item.answer, None
        w, h = getattr(item, "width", None), getattr(item, "height", None)
    else:
        raise ValueError(f"unsupported result type {type(item).__name__}: pass an engine Result, a worker/CLI dict "
                         "or an answer string")
    if size is not None:
        w, h = size
    if extracted is None and (w is None or h is None):
        raise ValueError("the image size is unknown for a result: pass image_sizes=[(width, height), ...] (worker "
                         "result dicts and answer strings carry no size)")
    return answer, extracted, (float(w) if w is not None else 0.0), (float(h) if h is not None else 0.0)


def to_coco(
    results: Iterable,
    image_ids: Sequence,
    category_map,
    *,
    image_sizes: Sequence[tuple[float, float]] | None = None,
    score: float | None = None,
    gt_categories: Mapping | None = None,
) -> list[dict]:
    """COCO results-format detections (`{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`).

    `results[i]` belongs to `image_ids[i]` and is one of: an engine `Result` (its answer and the size of the
    image it ran on); a dict with "answer" and "width"/"height" (a CLI `--json` record) or "image_size";
    a worker dict `{"answer": ...}` or a bare answer string, with the size from `image_sizes[i]`; or an
    official evaluation record with "extracted_predictions" (already in pixels). `image_sizes`, when given,
    overrides every result's own size — pass the original sizes when the engine ran on a downscaled copy.
    `category_map` is `{name: id}`, a COCO categories list or a COCO annotation dict. See the module
    docstring for the parsing rules (those of the official evaluation scripts) and the score convention.
    """
    results = list(results)
    image_ids = list(image_ids)
    if len(results) != len(image_ids):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image_ids: pass one image id per result")
    if image_sizes is not None and len(image_sizes) != len(results):
        raise ValueError(f"{len(results)} results but {len(image_sizes)} image_sizes")
    name_to_id = category_ids(category_map)
    detections = []
    for i, (item, image_id) in enumerate(zip(results, image_ids)):
        answer, extracted, w, h = _answer_and_size(item, None if image_sizes is None else image_sizes[i])
        scores: dict = {}
        if extracted is None:
            if answer is None:  # only an object whose .answer is None gets here (dicts are checked above)
                raise TypeError(f"result {i} has no answer text")
            is_result = not isinstance(item, (str, Mapping))
            # Engine Results carry a confidence per box, matched to the parsed boxes item for item.
            extracted, scores = parse_with_scores(answer, w, h, item if is_result else None, points=False)
        allowed = None
        if gt_categories is not None and image_id in gt_categories:
            allowed = {int(c) for c in gt_categories[image_id]}
        for label, coords in extracted.items():
            cat_id = name_to_id.get(_normalise(label))
            if cat_id is None or (allowed is not None and cat_id not in allowed):
                continue
            label_scores = scores.get(label, [])
            for k, c in enumerate(coords):
                if len(c) != 4:
                    continue  # points: the official converter skips anything that is not four values
                x1, y1, x2, y2 = (float(v) for v in c)
                own = label_scores[k] if k < len(label_scores) else None
                value = score if score is not None else own if own is not None else OFFICIAL_SCORE
                detections.append({"image_id": image_id, "category_id": cat_id,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(value)})
    return detections
