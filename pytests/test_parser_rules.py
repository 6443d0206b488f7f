"""The one answer parser (C++, `_core.parse_answer`) against independent regex statements of the two
official rules, on random answers: the evaluation scripts' parse_prediction (labelled runs, decimals,
white space, clamping, int bounds in JSON) and the worker's parse_boxes / parse_points."""
import json
import random
import re

import pytest

from locateanything_native import LocateAnythingWorker
from locateanything_native.eval.parsing import parse_prediction

# ---- the rules written as regexes (an oracle kept apart from the implementation under test) ----

_VALUE = r"<\s*([0-9]+(?:\.[0-9]+)?)\s*>\s*"
REF_RUN_RE = re.compile(r"<ref>([^<]+)</ref>((?:<box>.*?</box>)+)")
POINT_RE = re.compile(r"<box>\s*" + _VALUE * 2 + r"</box>")
BOX_RE = re.compile(r"<box>\s*" + _VALUE * 4 + r"</box>")
MAX_VALUE = 10000

# The official worker's static parse_boxes / parse_points patterns.
WORKER_BOX_RE = re.compile(r"<box><(\d+)><(\d+)><(\d+)><(\d+)></box>")
WORKER_POINT_RE = re.compile(r"<box><(\d+)><(\d+)></box>")


def oracle_items(text, points=True):
    """The labelled items of an answer in the order the scripts list them (per run: points, then boxes)."""
    items: list[Item] = []
    for run in REF_RUN_RE.finditer(text):
        label, body, offset = run.group(1), run.group(2), run.start(2)
        kinds = ((POINT_RE, True), (BOX_RE, False)) if points else ((BOX_RE, False),)
        for pattern, is_point in kinds:
            for m in pattern.finditer(body):
                values = [float(g) for g in m.groups()]
                if all(0 <= v <= MAX_VALUE for v in values):
                    items.append((label, values, is_point, offset + m.start()))
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


def oracle_prediction(text, w, h, points=True):
    out = {}
    for label, values, is_point, _ in oracle_items(text, points):
        out.setdefault(label, []).append(point_to_pixels(values, w, h) if is_point else box_to_pixels(values, w, h))
    return out




PIECES = ["<ref>", "</ref>", "<box>", "</box>", "<box>none</box>", "cat", "a b", "Traffic_Light", " ", "  ", "\n",
          "\t", "\u00a0", "\u3000", "<", ">", ".", "x", "<|im_end|>", "none", "<ref>dog</ref>", "</c>"]


def _value(rng):
    choice = rng.random()
    if choice < 0.5:
        v = str(rng.randint(0, 1000))
    elif choice < 0.7:
        v = f"{rng.randint(0, 1000)}.{rng.randint(0, 999)}"
    elif choice < 0.8:
        v = str(rng.choice([0, 1000, 10000, 10001, 99999, 123456789]))
    else:
        v = rng.choice(["", "-1", "1e3", "٣", "12a", "1.", ".5"])
    pad = lambda: rng.choice(["", "", " ", "\u00a0", "\t"])
    return "<" + pad() + v + pad() + ">" + pad()


def random_answer(rng):
    parts = []
    for _ in range(rng.randint(0, 14)):
        r = rng.random()
        if r < 0.35:
            n = rng.choice([2, 4, 4, 3, 1])
            parts.append("<box>" + rng.choice(["", "", " "]) + "".join(_value(rng) for _ in range(n)) + "</box>")
        elif r < 0.5:
            parts.append("<ref>" + rng.choice(["person", "car", "a<b", "", " x ", "\n"]) + "</ref>")
        else:
            parts.append(rng.choice(PIECES))
    return "".join(parts)


@pytest.mark.parametrize("points", [True, False])
def test_eval_rule_matches_the_scripts_regexes(points):
    rng = random.Random(1234 + points)
    for i in range(6000):
        text = random_answer(rng)
        w, h = rng.choice([(640, 360), (333, 517), (1, 1), (1000, 1000), (7, 3)])
        got = json.dumps(parse_prediction(text, w, h, points=points))
        want = json.dumps(oracle_prediction(text, w, h, points=points))
        assert got == want, (i, text)


def test_worker_rule_matches_the_official_static_methods():
    rng = random.Random(99)
    for i in range(6000):
        text = random_answer(rng).replace(" ", "")
        w, h = rng.choice([(640, 360), (333, 517), (1, 1)])
        boxes = [{"x1": int(a) / 1000 * w, "y1": int(b) / 1000 * h, "x2": int(c) / 1000 * w, "y2": int(d) / 1000 * h}
                 for a, b, c, d in WORKER_BOX_RE.findall(text) if all(s.isascii() for s in (a, b, c, d))]
        points = [{"x": int(a) / 1000 * w, "y": int(b) / 1000 * h}
                  for a, b in WORKER_POINT_RE.findall(text) if a.isascii() and b.isascii()]
        assert LocateAnythingWorker.parse_boxes(text, w, h) == boxes, (i, text)
        assert LocateAnythingWorker.parse_points(text, w, h) == points, (i, text)


def test_unknown_rule_is_refused():
    from locateanything_native import _core

    with pytest.raises(ValueError, match="parse rule"):
        _core.parse_answer("<box><1><2></box>", 10, 10, "loose")
