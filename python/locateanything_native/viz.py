"""Drawing results onto images with Pillow (labels, boxes, points)."""
from __future__ import annotations

import numpy as np

from .images import to_array

_COLORS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def _items(result):
    if isinstance(result, dict):
        return result.get("boxes", []), result.get("points", [])
    return result.boxes, result.points


def draw(image, result, width: int = 3, radius: int = 6):
    """An annotated copy of `image` (PIL image, array or path) as a PIL RGB image.

    `result` is an engine Result, a CLI JSON record, or a dict with "boxes" ({x1,y1,x2,y2[,label]}) and
    "points" ({x,y[,label]}) in pixels of `image`."""
    from PIL import Image, ImageDraw

    arr = to_array(image)
    rgb = arr[..., :3] if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)
    img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    canvas = ImageDraw.Draw(img)
    boxes, points = _items(result)
    labels = sorted({b.get("label", "") for b in boxes} | {p.get("label", "") for p in points})
    color = {lab: _COLORS[i % len(_COLORS)] for i, lab in enumerate(labels)}
    for b in boxes:
        c = color[b.get("label", "")]
        x1, x2 = sorted((b["x1"], b["x2"]))
        y1, y2 = sorted((b["y1"], b["y2"]))
        canvas.rectangle([x1, y1, x2, y2], outline=c, width=width)
        if b.get("label"):
            tw = canvas.textlength(b["label"])
            canvas.rectangle([x1, max(0, y1 - 12), x1 + tw + 4, y1], fill=c)
            canvas.text((x1 + 2, max(0, y1 - 12)), b["label"], fill=(255, 255, 255))
    for p in points:
        c = color[p.get("label", "")]
        canvas.ellipse([p["x"] - radius, p["y"] - radius, p["x"] + radius, p["y"] + radius], fill=c,
                       outline=(255, 255, 255))
        if p.get("label"):
            canvas.text((p["x"] + radius + 2, p["y"] - radius), p["label"], fill=c)
    return img
