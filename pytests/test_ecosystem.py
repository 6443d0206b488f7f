"""Around the engine: drawing, COCO-style output (the official evaluation rules), the notebooks, and an
evaluation loop written for the official worker that runs on ours with only its import line changed."""
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native.coco import category_ids, extract_predictions, to_coco
from locateanything_native.viz import draw

Image = pytest.importorskip("PIL.Image")

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="module")
def engine(fixtures_dir):
    return la.load(str(fixtures_dir / "tiny-a"), threads=2)


def grey(w=200, h=100, value=128):
    return np.full((h, w, 3), value, np.uint8)


# ---------------------------------------------------------------- drawing

def changed(before: np.ndarray, after, x, y) -> bool:
    return bool(np.any(np.asarray(after)[y, x] != before[y, x]))


def test_draw_marks_inside_the_boxes_and_leaves_the_rest():
    img = grey(200, 100)
    result = {"boxes": [{"label": "cat", "x1": 20, "y1": 30, "x2": 80, "y2": 90},
                        {"label": "", "x1": 150, "y1": 10, "x2": 120, "y2": 40}],  # corners in any order
              "points": [{"label": "nose", "x": 100.0, "y": 50.0}]}
    out = draw(img, result)
    assert isinstance(out, Image.Image) and out.size == (200, 100) and out.mode == "RGB"
    for x, y in [(50, 60), (21, 31), (79, 89), (135, 25), (100, 50)]:  # box interiors, edges, the point
        assert changed(img, out, x, y), (x, y)
    for x, y in [(190, 95), (5, 5), (110, 90), (190, 60)]:  # far from every box, point and label
        assert not changed(img, out, x, y), (x, y)
    assert np.array_equal(np.asarray(draw(img, {"boxes": [], "points": []})), img)
    # Two labels get two colours.
    two = np.asarray(draw(grey(), {"boxes": [{"label": "a", "x1": 0, "y1": 50, "x2": 40, "y2": 99},
                                             {"label": "b", "x1": 100, "y1": 50, "x2": 140, "y2": 99}]}))
    assert not np.array_equal(two[70, 20], two[70, 120])


def test_draw_takes_every_result_form(engine, fixtures_dir):
    path = fixtures_dir / "images" / "img0_640x360.png"
    r = engine.detect(str(path), ["square", "circle"], generation_mode="slow", max_new_tokens=12)
    assert r.boxes
    b = r.boxes[0]
    inside = (int((b["x1"] + b["x2"]) / 2), int((b["y1"] + b["y2"]) / 2))
    arr = np.asarray(Image.open(path).convert("RGB"))
    for image in (str(path), Image.open(path), arr):
        out = draw(image, r)
        assert out.size == (640, 360) and changed(arr, out, *inside)
        assert not changed(arr, out, 5, 355)
    # A worker dict: the answer is parsed at the drawn image's size.
    worker_style = np.asarray(draw(arr, {"answer": r.answer}))
    assert np.array_equal(worker_style, np.asarray(draw(arr, r)))
    # A result made on a half-size copy is scaled to the full image.
    class HalfSizeResult:
        width, height = 320, 180
        boxes = [{"label": "", "x1": 300.0, "y1": 150.0, "x2": 310.0, "y2": 170.0}]
        points = []

    out = draw(arr, HalfSizeResult())
    assert changed(arr, out, 610, 320) and not changed(arr, out, 305, 160)
    # An official evaluation record.
    official = {"extracted_predictions": {"square": [[10, 10, 60, 60]], "circle": [[300.0, 200.0]]}}
    out = draw(arr, official)
    assert changed(arr, out, 30, 30) and changed(arr, out, 300, 200) and not changed(arr, out, 600, 300)
    with pytest.raises(ValueError):
        draw(arr, {"nothing": 1})


def test_draw_rgba_grey_and_out_of_image_coordinates():
    rgba = np.zeros((50, 60, 4), np.uint8)  # fully transparent: white as the model sees it
    out = np.asarray(draw(rgba, {"boxes": [], "points": []}))
    assert out.shape == (50, 60, 3) and (out == 255).all()
    g = np.full((50, 60), 90, np.uint8)
    out = draw(g, {"boxes": [{"x1": -20, "y1": -5, "x2": 500, "y2": 400}], "points": []})  # clipped, no error
    assert out.size == (60, 50) and changed(np.repeat(g[..., None], 3, 2), out, 30, 25)


def test_draw_gives_a_label_one_colour_in_every_image():
    """The colour comes from the label itself (a stable hash), not from its place among one image's labels."""
    from locateanything_native.viz import label_color

    def box(label, x):
        return {"label": label, "x1": x, "y1": 50, "x2": x + 40, "y2": 99}

    # Opaque fills, so the middle of a box is exactly its colour.
    first = np.asarray(draw(grey(), {"boxes": [box("person", 0), box("zebra", 100)]}, fill_alpha=255))
    second = np.asarray(draw(grey(), {"boxes": [box("apple", 0), box("car", 60), box("person", 120)]},
                             fill_alpha=255))
    assert tuple(first[80, 20]) == tuple(second[80, 140]) == label_color("person")
    assert tuple(first[80, 120]) == label_color("zebra") and tuple(second[80, 20]) == label_color("apple")
    # Points too, and the same in another process (Python's hash() is salted per process; CRC-32 is not).
    dot = np.asarray(draw(grey(), {"points": [{"label": "person", "x": 100, "y": 50}]}))
    assert tuple(dot[50, 100]) == label_color("person")
    code = "from locateanything_native.viz import label_color; print(list(label_color('person')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert json.loads(out.stdout) == list(label_color("person"))


def tag_pixels(out, box, color, background=128):
    """In the region `box` (x1, y1, x2, y2) of `out` on a grey image: how many pixels have the tag colour,
    and how many are text (neither the tag colour nor the grey background)."""
    x1, y1, x2, y2 = box
    region = np.asarray(out)[y1:y2, x1:x2].reshape(-1, 3)
    fill = np.all(region == color, axis=1)
    text = ~fill & ~np.all(region == background, axis=1)
    return int(fill.sum()), int(text.sum())


def test_draw_puts_a_readable_label_on_every_box_and_point():
    from locateanything_native.viz import label_color

    img = grey(300, 200)
    result = {"boxes": [{"label": "cat", "x1": 40, "y1": 80, "x2": 120, "y2": 180},
                        {"label": "a long label", "x1": 285, "y1": 60, "x2": 299, "y2": 120}],  # at the right edge
              "points": [{"label": "nose", "x": 200.0, "y": 30.0}]}
    with_labels = np.asarray(draw(img, result))
    without = np.asarray(draw(img, result, labels=False))
    assert not np.array_equal(with_labels, without)
    # "cat": a tag of the box's colour with text on it, just above the box's top-left corner.
    fill, text = tag_pixels(with_labels, (40, 60, 70, 80), label_color("cat"))
    assert fill > 50 and text > 5, (fill, text)
    assert np.array_equal(with_labels[:, :30], without[:, :30])  # nothing left of the box
    # "nose": a tag (not bare text) right of the dot.
    fill, text = tag_pixels(with_labels, (206, 20, 240, 40), label_color("nose"))
    assert fill > 50 and text > 5, (fill, text)
    # "a long label" would run off the right edge: its tag is moved left, inside the image.
    fill, text = tag_pixels(with_labels, (220, 40, 285, 60), label_color("a long label"))
    assert fill > 50 and text > 5, (fill, text)
    assert np.array_equal(with_labels[125:, 200:], without[125:, 200:])


# ---------------------------------------------------------------- COCO output

CATS = {"person": 1, "traffic light": 10, "car": 3}
W, H = 1000, 500
ANSWER = ("<ref>person</ref><box><100><200><300><400></box><box><500><600><400><300></box>"  # 2nd: corners swapped
          "<ref>car</ref><box><0><0><1000><1000></box>"                                      # clamped to W-1, H-1
          "<box><10><20></box>"                                                               # a point: skipped
          "<ref>traffic_light</ref><box>none</box>"                                           # none: skipped
          "<ref>Traffic_Light</ref><box>< 50 >< 60.5 ><70><80></box>"                         # spaces, decimals, case
          "<ref>dog</ref><box><1><2><3><4></box>"                                             # not a category
          "<box><7><7><9><9></box>"                                                           # dog's 2nd box
          "<ref>person</ref><box><20000><1><2><3></box>"                                      # > 10000: skipped
          "<|im_end|>")


def test_extract_predictions_follows_the_official_parser():
    got = extract_predictions(ANSWER, W, H)
    assert list(got) == ["person", "car", "Traffic_Light", "dog"]
    assert got["person"] == [[100.0, 100.0, 300.0, 200.0], [400.0, 150.0, 500.0, 300.0]]
    assert got["car"] == [[0.0, 0.0, 999.0, 499.0]]
    assert got["Traffic_Light"] == [[50.0, 30.25, 70.0, 40.0]]
    assert got["dog"] == [[1.0, 1.0, 3.0, 2.0], [7.0, 3.5, 9.0, 4.5]]
    with_points = extract_predictions(ANSWER, W, H, points=True)
    assert with_points["car"] == [[10.0, 10.0], [0.0, 0.0, 999.0, 499.0]]  # a ref's points come first
    # No ref, no detection; a box after plain text is not part of the ref.
    assert extract_predictions("<box><1><2><3><4></box>", W, H) == {}
    assert extract_predictions("<ref>a</ref>text<box><1><2><3><4></box>", W, H) == {}


def test_to_coco_on_hand_made_answers():
    dets = to_coco([ANSWER], image_ids=[42], category_map=CATS, image_sizes=[(W, H)])
    assert dets == [
        {"image_id": 42, "category_id": 1, "bbox": [100.0, 100.0, 200.0, 100.0], "score": 0.2},
        {"image_id": 42, "category_id": 1, "bbox": [400.0, 150.0, 100.0, 150.0], "score": 0.2},
        {"image_id": 42, "category_id": 3, "bbox": [0.0, 0.0, 999.0, 499.0], "score": 0.2},
        {"image_id": 42, "category_id": 10, "bbox": [50.0, 30.25, 20.0, 9.75], "score": 0.2},
    ]
    json.dumps(dets)  # plain JSON types
    # Same answer, every accepted form of result.
    class FakeResult:
        answer, width, height = ANSWER, W, H

    forms = [FakeResult(), {"answer": ANSWER, "width": W, "height": H}, {"answer": ANSWER, "image_size": (W, H)},
             {"extracted_predictions": extract_predictions(ANSWER, W, H, points=True)}]
    for form in forms:
        assert to_coco([form], [42], CATS) == dets, form
    # Worker dicts carry no size: image_sizes gives it (and overrides a result's own size).
    assert to_coco([{"answer": ANSWER}], [42], CATS, image_sizes=[(W, H)]) == dets
    assert to_coco([FakeResult()], [42], CATS, image_sizes=[(2 * W, 2 * H)])[0]["bbox"] == [200.0, 200.0, 400.0, 200.0]
    # Several images; COCO categories list; score; ground-truth filter (the official --positive_only).
    coco_cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 10, "name": "traffic_light"}]
    two = to_coco([ANSWER, "<ref>car</ref><box><0><0><500><500></box>"], [1, 2], coco_cats,
                  image_sizes=[(W, H), (100, 100)], score=1.0)
    assert [d["image_id"] for d in two] == [1, 1, 1, 1, 2] and {d["score"] for d in two} == {1.0}
    assert two[-1]["bbox"] == [0.0, 0.0, 50.0, 50.0]
    only_gt = to_coco([ANSWER], [7], {"categories": coco_cats}, image_sizes=[(W, H)], gt_categories={7: [3]})
    assert [d["category_id"] for d in only_gt] == [3]
    assert to_coco(["<|im_end|>"], [1], CATS, image_sizes=[(10, 10)]) == []
    assert category_ids({"Traffic_Light": 10}) == {"traffic light": 10}


def test_to_coco_errors():
    with pytest.raises(ValueError, match="image_ids"):
        to_coco([ANSWER, ANSWER], [1], CATS, image_sizes=[(1, 1), (1, 1)])
    with pytest.raises(ValueError, match="image_sizes"):
        to_coco([{"answer": ANSWER}], [1], CATS)
    with pytest.raises(ValueError, match="unsupported"):
        to_coco([123], [1], CATS)


def test_to_coco_with_engine_results(engine, fixtures_dir):
    paths = [fixtures_dir / "images" / n for n in ("img0_640x360.png", "img3_28x28.png")]
    results = [engine.detect(str(p), ["square", "circle"], max_new_tokens=16) for p in paths]
    dets = to_coco(results, [1, 2], {"square": 1, "circle": 2})
    expected = to_coco([r.answer for r in results], [1, 2], {"square": 1, "circle": 2},
                       image_sizes=[(640, 360), (28, 28)])
    # The same boxes (an engine Result scores each box with its own confidence, an answer string with 0.2).
    assert [{**d, "score": 0} for d in dets] == [{**d, "score": 0} for d in expected]
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"} and len(d["bbox"]) == 4


class _ScoredResult:
    """What to_coco reads of an engine Result: answer, size, and the worker-rule items with scores."""

    answer = "<ref>person</ref><box><100><200><300><400></box><box><1><2><3><4></box><ref>car</ref><box><5><6><7><8></box>"
    width, height = 1000, 500
    boxes = [{"label": "person", "x1": 100.0, "y1": 100.0, "x2": 300.0, "y2": 200.0, "score": 0.9},
             {"label": "person", "x1": 1.0, "y1": 1.0, "x2": 3.0, "y2": 2.0, "score": None},
             {"label": "car", "x1": 5.0, "y1": 3.0, "x2": 7.0, "y2": 4.0, "score": 0.25}]
    points: list = []


def test_to_coco_takes_the_engine_scores():
    dets = to_coco([_ScoredResult()], [7], {"person": 1, "car": 3})
    assert [(d["category_id"], d["score"]) for d in dets] == [(1, 0.9), (1, 0.2), (3, 0.25)]  # unknown → 0.2
    assert {d["score"] for d in to_coco([_ScoredResult()], [7], {"person": 1, "car": 3}, score=0.5)} == {0.5}
    assert {d["score"] for d in to_coco([_ScoredResult.answer], [7], {"person": 1, "car": 3},
                                        image_sizes=[(1000, 500)])} == {0.2}
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"} and len(d["bbox"]) == 4


# ---------------------------------------------------------------- notebooks

BENCH_JSON = {"model": "random-full", "runs": [
    {"mode": "hybrid", "threads": 16, "timings": {"preprocess": 0.01, "vision": 1.2, "projector": 0.02, "prefill": 0.8,
                                                  "decode": 3.1, "generated_tokens": 64, "tokens_per_second": 20.6}},
    {"mode": "slow", "threads": 16, "timings": {"vision": 1.2, "prefill": 0.8, "decode": 9.1}}]}


@pytest.mark.parametrize("name,bench_json", [("01_quickstart.ipynb", None), ("02_benchmarks.ipynb", None),
                                             ("02_benchmarks.ipynb", BENCH_JSON)])
def test_notebook_executes(name, bench_json, fixtures_dir, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # The kernel is a new process: it finds this very module through PYTHONPATH, and the fixtures.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pathlib.Path(la.__file__).parent.parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("LA_FIXTURES", str(fixtures_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the plots
    results = tmp_path / "results"  # empty: the benchmark notebook times a run of its own
    results.mkdir()
    if bench_json is not None:
        (results / "e2e.json").write_text(json.dumps(bench_json))
        (results / "broken.json").write_text("{not json")
    monkeypatch.setenv("LA_BENCH_RESULTS", str(results))
    for var in ("LOCATEANYTHING_MODEL", "LOCATEANYTHING_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    start = time.time()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    assert time.time() - start < 60, f"{name} took {time.time() - start:.0f}s (budget: one minute)"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook should show at least one picture"
    if bench_json is not None:
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert "e2e.json: 2 timing records" in text and "skipped broken.json" in text and "own run" not in text
