"""Drawing results onto images with Pillow: a translucent box per detection, its label, a dot per point."""
from __future__ import annotations

import zlib

import numpy as np

from . import _core
from .images import to_array

# Distinct colours (no greys, which vanish on grey images); a label picks one by a stable hash, see label_color.
_COLORS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128)]


def _from_answer(answer: str, width: int, height: int) -> tuple[list, list]:
    """Boxes and points of an answer by the package's one parser (rule "worker", as Result.boxes: a ref's
    label applies to every box after it until the next ref)."""
    boxes, points = [], []
    for d in _core.parse_answer(answer, width, height, "worker"):
        if d["kind"] == "box":
            boxes.append({"label": d["label"], **dict(zip(("x1", "y1", "x2", "y2"), d["pixels"]))})
        elif d["kind"] == "point":
            points.append({"label": d["label"], **dict(zip(("x", "y"), d["pixels"]))})
    return boxes, points


def _items(result, width: int, height: int) -> tuple[list, list]:
    """Boxes and points in pixels of the width × height image being drawn on."""
    if isinstance(result, dict):
        if "boxes" in result or "points" in result:
            boxes, points = list(result.get("boxes", [])), list(result.get("points", []))
        elif "extracted_predictions" in result:  # an official evaluation record: {label: [[x1,y1,x2,y2] | [x,y]]}
            boxes, points = [], []
            for label, coords in result["extracted_predictions"].items():
                for c in coords:
                    if len(c) == 4:
                        boxes.append({"label": label, "x1": c[0], "y1": c[1], "x2": c[2], "y2": c[3]})
                    elif len(c) == 2:
                        points.append({"label": label, "x": c[0], "y": c[1]})
        elif "answer" in result:  # a worker dict: the answer is normalised, so the drawn image's size applies
            return _from_answer(result["answer"], width, height)
        else:
            raise ValueError("result dict needs 'boxes'/'points', 'answer' or 'extracted_predictions'")
        src_w, src_h = result.get("width"), result.get("height")
    elif hasattr(result, "boxes") and hasattr(result, "points"):
        boxes, points = list(result.boxes), list(result.points)
        src_w, src_h = getattr(result, "width", None), getattr(result, "height", None)
    else:
        raise ValueError(f"cannot draw a {type(result).__name__}: pass an engine Result, a CLI record or a worker dict")
    # A result made on a resized copy of this image is scaled to it (coordinates are relative to the whole image).
    if src_w and src_h and (src_w, src_h) != (width, height):
        sx, sy = width / src_w, height / src_h
        boxes = [{**b, "x1": b["x1"] * sx, "x2": b["x2"] * sx, "y1": b["y1"] * sy, "y2": b["y2"] * sy} for b in boxes]
        points = [{**p, "x": p["x"] * sx, "y": p["y"] * sy} for p in points]
    return boxes, points


def label_color(label) -> tuple[int, int, int]:
    """The colour of `label` in every picture: CRC-32 of its UTF-8 text picks from a fixed palette (Python's
    hash() would not do: it is salted per process)."""
    return _COLORS[zlib.crc32(str(label).encode("utf-8")) % len(_COLORS)]


def _text_color(color: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """Black text on light tags, white on dark ones."""
    r, g, b = color
    return (0, 0, 0, 255) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255, 255)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def _rgb_image(image):
    from PIL import Image

    if type(image).__module__.startswith("PIL.") and hasattr(image, "convert") and image.mode == "RGB":
        return image.copy()
    arr = to_array(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:  # RGBA onto white, as the model sees it
        a = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (arr[..., :3] * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]))


def draw(image, result, width: int | None = None, radius: int | None = None, fill_alpha: int = 60,
         labels: bool = True):
    """An annotated copy of `image` (PIL image, numpy array or path) as a PIL RGB image of the same size.

    `result` is an engine `Result`, a CLI `--json` record (or any dict with "boxes" `{x1, y1, x2, y2[, label]}`
    and "points" `{x, y[, label]}` in pixels), a worker dict `{"answer": ...}` (parsed against this image's
    size), or an official evaluation record with "extracted_predictions". When the result says which size it
    was made at ("width"/"height") and that differs from `image`, coordinates are scaled to `image`.
    A label has the same colour in every picture (`label_color`); boxes get an outline, a translucent fill
    (`fill_alpha` 0..255) and, with `labels`, a tag with their label (text on a filled rectangle of the
    label's colour, inside the image); points a dot and a tag beside it. `width` / `radius` default to
    sizes that suit the image.
    """
    from PIL import Image, ImageDraw

    img = _rgb_image(image)
    w, h = img.size
    boxes, points = _items(result, w, h)
    line = width if width is not None else max(2, round(min(w, h) / 250))
    dot = radius if radius is not None else max(4, round(min(w, h) / 90))
    font = _font(max(10, min(24, round(min(w, h) / 40))))
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    canvas = ImageDraw.Draw(overlay)
    tags = []  # (x, y, text, colour, place): the tag's anchor and which side of it the tag goes
    for b in boxes:
        c = label_color(b.get("label", ""))
        x1, x2 = sorted((float(b["x1"]), float(b["x2"])))
        y1, y2 = sorted((float(b["y1"]), float(b["y2"])))
        x1, x2 = max(0.0, min(x1, w - 1.0)), max(0.0, min(x2, w - 1.0))
        y1, y2 = max(0.0, min(y1, h - 1.0)), max(0.0, min(y2, h - 1.0))
        canvas.rectangle([x1, y1, x2, y2], fill=c + (fill_alpha,), outline=c + (255,), width=line)
        if labels and b.get("label"):
            tags.append((x1, y1, str(b["label"]), c, "box"))
    for p in points:
        c = label_color(p.get("label", ""))
        x, y = float(p["x"]), float(p["y"])
        canvas.ellipse([x - dot, y - dot, x + dot, y + dot], fill=c + (255,), outline=(255, 255, 255, 255),
                       width=max(1, dot // 3))
        if labels and p.get("label"):
            tags.append((x, y, str(p["label"]), c, "point"))
    # Tags last, so a box drawn later never hides a label; each is a filled rectangle kept inside the image.
    for x, y, text, c, place in tags:
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        tw, th = right - left + 6, bottom - top + 4
        if place == "box":  # above the box's top-left corner, or inside it at the top edge
            tx, ty = x, (y - th if y - th >= 0 else y)
        else:  # right of the dot, or left of it near the right edge
            tx = x + dot + 2 if x + dot + 2 + tw <= w else x - dot - 2 - tw
            ty = y - th / 2
        tx, ty = max(0.0, min(tx, w - tw)), max(0.0, min(ty, h - th))
        canvas.rectangle([tx, ty, tx + tw - 1, ty + th - 1], fill=c + (255,))
        canvas.text((tx + 3 - left, ty + 2 - top), text, fill=_text_color(c), font=font)
    return Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")
