"""The official evaluation scripts' rules, as locateanything_native.eval implements them (no model needed):
category normalisation, answer parsing and clamping, scaling back, every prompt branch, sampling options,
seeds, formats and the device rule. The expected values are written out by hand from the scripts' rules."""
import json
import warnings

import pytest

from locateanything_native.coco import extract_predictions, to_coco
from locateanything_native.eval import normalize_categories, parse_prediction, resize_image_short_side
from locateanything_native.eval import prompts
from locateanything_native.eval.parsing import parse_with_scores, scale_back
from locateanything_native.eval.records import resolve_format

Image = pytest.importorskip("PIL.Image")


# ---------------------------------------------------------------- categories

@pytest.mark.parametrize("given,expected", [
    (None, []),
    ("person", ["person"]),
    ("person, car ,truck", ["person", "car", "truck"]),
    ("a, , b,", ["a", "b"]),
    ("a, b, a", ["a", "b", "a"]),                      # a string keeps duplicates
    (["person", "car"], ["person", "car"]),
    (["person, car, truck"], ["person", "car", "truck"]),  # packed into one string
    (["a", "b, a", None, "c"], ["a", "b", "c"]),          # a list drops duplicates (first kept) and None
    ([3, "3", 4.5], ["3", "4.5"]),                        # non-strings become str
    (("x", "y"), ["x", "y"]),
    ([], []),
    ("", []),
    (7, ["7"]),
])
def test_normalize_categories(given, expected):
    assert normalize_categories(given) == expected


# ---------------------------------------------------------------- parsing

W, H = 1000, 500


def test_parse_keeps_only_labelled_runs_in_order():
    text = ("<box><1><2><3><4></box>"                                  # no ref: dropped
            "<ref>person</ref><box><100><200><300><400></box><box><500><600><400><300></box>"
            "<ref>car</ref><box><10><20></box><box><0><0><1000><1000></box>"  # a point, then a box
            "<ref>dog</ref>text<box><1><2><3><4></box>"                # text after the ref: not a run
            "<ref>cat</ref><box>none</box>"                            # none: nothing
            "<ref>person</ref><box><20000><1><2><3></box>"             # > 10000: dropped
            "<|im_end|>")
    got = parse_prediction(text, W, H)
    assert list(got) == ["person", "car"]
    assert got["person"] == [[100.0, 100.0, 300.0, 200.0], [400.0, 150.0, 500.0, 300.0]]  # corners put in order
    assert got["car"] == [[10.0, 10.0], [0.0, 0.0, 999, 499]]
    assert parse_prediction(text, W, H, points=False)["car"] == [[0.0, 0.0, 999, 499]]
    assert parse_prediction("", W, H) == {} and parse_prediction("<ref>a</ref>", W, H) == {}


def test_parse_points_before_boxes_within_a_run():
    got = parse_prediction("<ref>x</ref><box><1><2><3><4></box><box><500><500></box>", 1000, 1000)
    assert got == {"x": [[500.0, 500.0], [1.0, 2.0, 3.0, 4.0]]}


def test_parse_values_spaces_decimals_and_limits():
    got = parse_prediction("<ref>a</ref><box>< 50 >< 60.5 ><70><80></box><box><10000><0><0><0></box>", W, H)
    assert got["a"][0] == [50.0, 30.25, 70.0, 40.0]
    assert got["a"][1] == [0.0, 0.0, 999, 0.0]  # 10000 is allowed, then clamped to the last pixel
    assert parse_prediction("<ref>a</ref><box><10001><0><0><0></box>", W, H) == {}


def test_clamping_keeps_the_scripts_int_values_in_json():
    # max(0, min(v, size - 1)): where a bound wins (or ties at 0) the value is that int, exactly as the
    # official records show it; a value exactly at size - 1 stays a float (min keeps its first argument).
    got = parse_prediction("<ref>a</ref><box><0><0><1000><1000></box><box><1000><0></box>", 640, 360)
    assert json.dumps(got) == '{"a": [[639, 0], [0, 0, 639, 359]]}'
    assert json.dumps(parse_prediction("<ref>a</ref><box><0><999><500><0.5></box>", 1000, 1000)) == \
        '{"a": [[0, 0.5, 500.0, 999.0]]}'


def test_coco_module_uses_the_same_parser():
    text = "<ref>person</ref><box><100><200><300><400></box><ref>car</ref><box><10><20></box><box><0><0><1000><1000></box>"
    assert extract_predictions(text, W, H) == parse_prediction(text, W, H, points=False)
    assert extract_predictions(text, W, H, points=True) == parse_prediction(text, W, H)
    dets = to_coco([text], [1], {"car": 3}, image_sizes=[(W, H)])
    assert dets == [{"image_id": 1, "category_id": 3, "bbox": [0.0, 0.0, 999.0, 499.0], "score": 0.2}]


class FakeResult:
    def __init__(self, answer, boxes=(), points=()):
        self.answer, self.boxes, self.points = answer, list(boxes), list(points)


def test_scores_align_with_the_engine_items():
    text = "<box><1><1><2><2></box><ref>a</ref><box><5><5></box><box><10><10><20><20></box><ref>b</ref><box><3><4><5><6></box>"
    result = FakeResult(text, boxes=[{"score": 0.1}, {"score": 0.2}, {"score": float("nan")}],
                        points=[{"score": 0.7}])
    preds, scores = parse_with_scores(text, 100, 100, result)
    assert preds == parse_prediction(text, 100, 100)
    assert scores == {"a": [0.7, 0.2], "b": [None]}  # NaN (unknown) becomes None
    _, no_scores = parse_with_scores(text, 100, 100, FakeResult(text, boxes=[{}, {}, {}], points=[{}]))
    assert no_scores == {"a": [None, None], "b": [None]}


# ---------------------------------------------------------------- resizing and scaling back

@pytest.mark.parametrize("size,short,expected", [((640, 360), 200, (355, 200)), ((333, 517), 100, (100, 155)),
                                                  ((50, 50), 100, (100, 100)), ((1000, 10), 5, (500, 5))])
def test_resize_short_side(size, short, expected):
    img = Image.new("RGB", size, (10, 20, 30))
    out, scale = resize_image_short_side(img, short)
    assert out.size == expected
    assert scale == short / min(size)


def test_scale_back():
    preds = {"a": [[10, 20], [0, 0, 30, 40]], "b": [], "c": [[1, 2, 3]]}
    assert scale_back(preds, 1.0) is preds and scale_back(preds, None) is preds
    assert scale_back(preds, 0.5) == {"a": [[20.0, 40.0], [0.0, 0.0, 60.0, 80.0]], "b": [], "c": []}


# ---------------------------------------------------------------- prompts

LOCATE_ALL = "Locate all the instances that matches the following description: "


@pytest.mark.parametrize("dataset,eval_type,cats,questions,per_category", [
    ("Dense200", "box_eval", ["a", "b"], [LOCATE_ALL + "a</c>b."], False),
    ("COCO", "box_eval", ["a", "b"], [LOCATE_ALL + "a</c>b."], False),
    ("HumanRef", "box_eval", ["a man", "a dog"], [LOCATE_ALL + "a man, a dog."], False),
    ("RefCOCOg_val", "box_eval", ["the cup"],
     ["Locate a single instance that matches the following description: the cup."], False),
    ("RefCOCOg_test", "box_eval", ["x", "y"],
     ["Locate a single instance that matches the following description: x, y."], False),
    ("TotalText", "box_eval", ["text"], ["Detect all the text in box format.text."], False),
    ("SROIE", "box_eval", [], ["Detect all the text in box format.."], False),
    ("IC15", "box_eval", ["a", "b"], ["Detect all the text in box format.a, b."], False),
    ("HierText", "box_eval", ["t"], ["Detect all the text in box format.t."], False),
    ("HumanRef", "point_eval", ["a man", "a dog"], ["Point to: a man, a dog."], False),  # point_eval wins
    ("IC15", "point_eval", ["t"], ["Point to: t."], False),
    ("RefCOCOg_val", "point_eval", ["x"], ["Point to: x."], False),
    ("COCO", "point_eval", ["cat", "dog"], ["Point to: cat.", "Point to: dog."], True),
    ("LVIS_fullval", "point_eval", ["a"], ["Point to: a."], True),
    ("VisDrone", "point_eval", [], [], True),
    ("LVIS", "point_eval", ["a", "b"], ["Point to: a, b."], False),  # only LVIS_fullval is per category
])
def test_every_prompt_branch(dataset, eval_type, cats, questions, per_category):
    assert prompts.grounding_queries(cats, dataset, eval_type) == (questions, per_category)


def test_other_scripts_prompts():
    assert prompts.detection_question(["a, b", "c"]) == LOCATE_ALL + "a, b</c>c."
    assert prompts.sspro_question("the search button") == "Point to: the search button."
    assert prompts.grounding_question(["a", "b"]) == LOCATE_ALL + "a</c>b."
    assert prompts.grounding_question(["a", "b"], "Point to: ") == "Point to: a, b."


def test_sampling_options():
    kw = prompts.build_generate_kwargs("fast", 100, include_eos_token=True)
    assert kw == {"generation_mode": "fast", "max_new_tokens": 100, "temperature": 0.7, "top_p": 0.9, "top_k": 0,
                  "repetition_penalty": 1.1, "chat_template": "eval"}
    assert prompts.build_generate_kwargs(temperature=0)["temperature"] == 0.0
    assert prompts.build_generate_kwargs()["max_new_tokens"] == 4096
    with pytest.raises(ValueError):
        prompts.build_generate_kwargs("turbo")
    assert prompts.N_FUTURE_TOKENS == 6


def test_seeds_are_stable_and_distinct():
    assert prompts.derive_seed(0, 5, 0) == prompts.derive_seed(0, 5, 0)
    seeds = {prompts.derive_seed(s, i, k) for s in (0, 1) for i in range(50) for k in range(3)}
    assert len(seeds) == 300 and all(0 <= s < 2 ** 63 for s in seeds)
    assert prompts.derive_seed(7, 3, 1) == 580486552695325856  # fixed forever: journals depend on it


def test_format_auto_detection():
    def rows(*entries):
        return [{"index": i, "entry": e} for i, e in enumerate(entries)]

    assert resolve_format("auto", rows({"file_name": "a.png", "instruction": "x", "answer": []}), "box_eval") == "sspro"
    assert resolve_format("auto", rows({"image_path": "a", "dataset_name": "COCO"}), "box_eval") == "detection"
    assert resolve_format("auto", rows({"image_path": "a", "dataset_name": "LVIS_fullval"}), "box_eval") == "detection"
    assert resolve_format("auto", rows({"image_path": "a", "dataset_name": "COCO"}), "point_eval") == "grounding"
    assert resolve_format("auto", rows({"image_path": "a", "dataset_name": "HumanRef"}), "box_eval") == "grounding"
    assert resolve_format("auto", [{"index": 0, "entry": None, "error": "x"}], "box_eval") == "grounding"
    assert resolve_format("sspro", rows({"image_path": "a"}), "box_eval") == "sspro"
    with pytest.raises(ValueError):
        resolve_format("coco", rows(), "box_eval")


def test_device_rule_warns_once():
    from locateanything_native.eval import workers

    workers._device_warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert workers.resolve_device("cuda:3") == "cpu"
        assert workers.resolve_device("cuda") == "cpu"
        assert workers.resolve_device("cpu") == "cpu"
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    with pytest.raises(ValueError, match="cuda"):
        workers.resolve_device("mps")


def test_scores_follow_their_items_past_malformed_boxes_none_and_non_ascii_labels():
    from locateanything_native.eval.parsing import parse_with_scores

    answer = "<ref>é猫</ref><box><1></box><box>none</box><box><10><20><30><40></box><box><5><6></box>"

    class Result:  # what parse_with_scores reads of an engine Result (worker-rule items with scores)
        boxes = [{"label": "é猫", "x1": 10.0, "y1": 20.0, "x2": 30.0, "y2": 40.0, "score": 0.9}]
        points = [{"label": "é猫", "x": 5.0, "y": 6.0, "score": 0.3}]

    preds, scores = parse_with_scores(answer, 1000, 1000, Result())
    assert preds == {"é猫": [[5.0, 6.0], [10.0, 20.0, 30.0, 40.0]]}  # a run lists its points first
    assert scores == {"é猫": [0.3, 0.9]}
