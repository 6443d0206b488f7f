"""`locateanything metrics`: the numbers of the official other_metric.py / sspro_metric.py on small synthetic
record files, computed here by hand; the FastEval TSV and COCO results with the model's scores; the plot."""
import json
import pathlib
import subprocess
import sys

import pytest

from locateanything_native.eval import box_metrics, sspro_metrics
from locateanything_native.eval.cli import main as eval_main
from locateanything_native.eval.export import coco_results, write_fasteval_tsv
from locateanything_native.eval.metrics import load_type_mapping

REPO = pathlib.Path(__file__).resolve().parents[1]
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def rec(task, dataset, gt, preds, **extra):
    r = {"image_path": "x.jpg", "extracted_predictions": preds, "gt": gt, "question": "", "dataset_name": dataset,
         "raw_response": "", "task_name": task, **extra}
    if task is None:
        del r["task_name"]
    return r


DET_A = rec("common_object_detection", "COCO",
            {"Car": [[0, 0, 10, 10]], "person": [[20, 20, 30, 30]]},
            {"car": [[0, 0, 10, 10]],                  # IoU 1
             "person": [[20, 20, 30, 32]],             # IoU 100 / 120 = 0.833
             "dog": [[50, 50, 60, 60]]})               # a label the ground truth does not have
DET_B = rec("common_object_detection", "COCO", {}, {})  # nothing to find, nothing found: 1 / 1
DET_ERR = rec("common_object_detection", "COCO", {"car": [[0, 0, 10, 10]]}, {}, error="image not found")
REFERRING = rec(None, "RefCOCOg_val", {"a": [[0, 0, 10, 10]]}, {"zzz": [[0, 0, 10, 10]], "b": [[0, 0, 5, 5]]})
GUI = [rec("gui", "SS", [0, 0, 10, 10], {"b": [[5, 5]]}),                 # point inside: right
       rec("gui", "SS", [0, 0, 10, 10], {"b": [[20, 20, 30, 30]]}),       # box centre outside: wrong
       rec("gui", "SS", [0, 0, 10, 10], {})]                              # nothing: wrong
HALLUCINATION = [rec("hallucination", "H", {}, {}), rec("hallucination", "H", {}, {"x": [[1, 1, 2, 2]]})]


def f1(p, r):
    return 2 * p * r / (p + r)


def test_box_metrics_by_hand():
    m = box_metrics([DET_A, DET_B, DET_ERR, REFERRING, *GUI, *HALLUCINATION])
    assert m["iou_thresholds"] == THRESHOLDS and m["errors_skipped"] == 1
    g = m["groups"]["common_object_detection_COCO"]
    assert g["samples"] == 2
    for t in THRESHOLDS:
        matches = 2 if t <= 0.8 else 1  # the person box (IoU 0.833) matches up to 0.8
        p, r = (matches / 3 + 1) / 2, (matches / 2 + 1) / 2
        assert g["by_iou"][t]["precision"] == pytest.approx(p, abs=1e-15)
        assert g["by_iou"][t]["recall"] == pytest.approx(r, abs=1e-15)
        assert g["by_iou"][t]["f1"] == pytest.approx(f1(p, r), abs=1e-15)
    assert g["iou_50"]["f1"] == pytest.approx(10 / 11) and g["iou_95"]["f1"] == pytest.approx(12 / 17)
    assert g["mean"]["precision"] == pytest.approx(47 / 60)
    assert g["mean"]["recall"] == pytest.approx(0.925)
    assert g["mean"]["f1"] == pytest.approx((7 * 10 / 11 + 3 * 12 / 17) / 10)
    assert g["instruction_following"] == 1.0 and g["wrong_rejection"] == 0.0
    ref = m["groups"]["referring_object_detection_RefCOCOg_val"]  # no task_name: labels ignored
    assert ref["mean"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}
    gui = m["groups"]["gui_SS"]
    assert gui["gui_accuracy"] == pytest.approx(1 / 3) and gui["iou_95"]["precision"] == pytest.approx(1 / 3)
    assert m["groups"]["hallucination_H"]["hallucination_accuracy"] == 0.5
    # Error records scored as empty predictions on request.
    m2 = box_metrics([DET_A, DET_B, DET_ERR], include_errors=True)
    assert m2["groups"]["common_object_detection_COCO"]["by_iou"][0.5]["recall"] == pytest.approx((1 + 1 + 0) / 3)


def test_pointing_records_switch_to_one_threshold():
    point = rec("pointing", "P", {"Cat": [[0, 0, 10, 10], [20, 20, 30, 30]]},
                {"cat": [[5, 5], [25, 25], [50, 50]], "dog": [[1, 1]]})
    m = box_metrics([point, DET_A])
    assert m["iou_thresholds"] == [0.5]
    p = m["groups"]["pointing_P"]
    assert p["pointing"] and p["point"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}
    d = m["groups"]["common_object_detection_COCO"]
    assert d["mean"]["recall"] == 1.0 and d["mean"]["precision"] == pytest.approx(2 / 3)
    assert d["iou_95"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # as the official table shows it
    assert box_metrics([point, DET_A], auto_detect_pointing=False)["iou_thresholds"] == THRESHOLDS


def test_records_the_official_script_skips_are_skipped():
    bad = rec("common_object_detection", "COCO", {"car": [[0, 0, 10, 10]]}, {"car": [[5, 5]]})  # a point: IoU fails
    m = box_metrics([DET_A, bad])
    assert m["groups"]["common_object_detection_COCO"]["samples"] == 1
    assert sum(m["not_scored"].values()) == 1


def test_sspro_metrics_by_hand(tmp_path):
    mapping = tmp_path / "map.jsonl"
    mapping.write_text(json.dumps({"img_filename": "x.png", "data_source": "Web2", "data_type": "icon"}) + "\n")
    records = [
        {"image_name": "pc_1.png", "data_type": "text", "instruction": "a", "extracted_predictions": {"b": [[5, 5]]},
         "gt": [0, 0, 10, 10]},
        {"image_name": "mobile_2.png", "data_type": "icon", "instruction": "b",
         "extracted_predictions": {"b": [[20, 20, 40, 40]]}, "gt": [0, 0, 10, 10]},
        {"image_name": "x.png", "data_type": "", "instruction": "c", "extracted_predictions": {"b": [[0, 0, 4, 4]]},
         "gt": [0, 0, 10, 10]},
        {"image_name": "pc_3.png", "data_type": "text", "instruction": "d", "extracted_predictions": {}, "gt": [],
         "error": "image not found"},
    ]
    m = sspro_metrics(records, load_type_mapping(str(mapping)))
    assert m["overall_accuracy"] == pytest.approx(2 / 3) and m["total_count"] == 3 and m["errors_skipped"] == 1
    assert {k: (v["correct"], v["total"]) for k, v in m["category_accuracies"].items()} == {
        "Desktop-text": (1, 1), "Mobile-icon": (0, 1), "Web2-icon": (1, 1)}


def coco_fixture(tmp_path):
    coco = {"images": [{"id": 7, "file_name": "val/a.jpg"}, {"id": 8, "file_name": "val/b.jpg"}],
            "categories": [{"id": 1, "name": "traffic_light"}, {"id": 2, "name": "car"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    records = [
        {"image_path": "a.jpg", "extracted_predictions": {"car": [[0, 0, 10, 10], [1, 2]], "Traffic Light": [[0, 0, 1, 1]]},
         "scores": {"car": [0.9, 0.3], "Traffic Light": [0.5]}, "gt": {}, "task_name": "t", "dataset_name": "COCO"},
        {"image_path": "b.jpg", "extracted_predictions": {"traffic_light": [[2, 2, 6, 8]], "dog": [[0, 0, 1, 1]]},
         "gt": {}, "task_name": "t", "dataset_name": "COCO"},
        {"image_path": "c.jpg", "extracted_predictions": {}, "gt": {}, "error": "image not found"},
    ]
    return path, records


def test_fasteval_tsv_and_coco_results_with_scores(tmp_path):
    coco, records = coco_fixture(tmp_path)
    n = write_fasteval_tsv(records, str(coco), str(tmp_path / "fast.tsv"))
    assert n == 2
    lines = (tmp_path / "fast.tsv").read_text().splitlines()
    # Image 7 has ground truth (car only): traffic lights are dropped there (the official --positive_only);
    # image 8 has none, so everything with a category counts. The point and the dog are never boxes.
    assert lines == ['7\t[{"class": "car", "conf": 0.9, "rect": [0, 0, 10, 10]}]',
                     '8\t[{"class": "traffic_light", "conf": 0.2, "rect": [2, 2, 4, 6]}]']
    assert coco_results(records, str(coco)) == [
        {"image_id": 7, "category_id": 2, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.9},
        {"image_id": 8, "category_id": 1, "bbox": [2.0, 2.0, 4.0, 6.0], "score": 0.2}]


def test_coco_ap_with_pycocotools(tmp_path):
    pytest.importorskip("pycocotools")
    from locateanything_native.eval import coco_ap

    coco, records = coco_fixture(tmp_path)
    ap = coco_ap(records, str(coco))
    assert ap["images"] == 2 and ap["detections"] == 2
    assert ap["stats"]["AP50"] == pytest.approx(1.0)


def test_metrics_command(tmp_path, capsys):
    data = tmp_path / "answer.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [DET_A, DET_B, DET_ERR, *GUI]))
    out = tmp_path / "m" / "metrics.json"
    assert eval_main(["--data_path", str(data), "--output_path", str(out)], "metrics") == 0
    text = capsys.readouterr().out
    assert "common_object_detection_COCO" in text and "P:0.833 R:1.000 F1:0.909" in text
    assert "1 error records left out" in text
    saved = json.loads(out.read_text())
    assert saved["groups"]["common_object_detection_COCO"]["by_iou"]["0.5"]["recall"] == 1.0
    assert saved["groups"]["gui_SS"]["gui_accuracy"] == pytest.approx(1 / 3)
    ss = tmp_path / "ss.jsonl"
    ss.write_text(json.dumps({"image_name": "pc_1.png", "data_type": "text", "data_source": "Unknown", "instruction": "a",
                              "extracted_predictions": {"b": [[5, 5]]}, "gt": [0, 0, 10, 10]}) + "\n")
    assert eval_main(["--jsonl_file", str(ss)], "metrics") == 0  # ScreenSpot-Pro records are recognised
    assert "ScreenSpot-Pro accuracy: 1.0000 (1/1)" in capsys.readouterr().out
    coco, records = coco_fixture(tmp_path)
    recs = tmp_path / "coco_recs.jsonl"
    recs.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert eval_main(["--data-path", str(recs), "--coco_json", str(coco), "--fasteval_tsv", str(tmp_path / "f.tsv")],
                     "metrics") == 0
    assert len((tmp_path / "f.tsv").read_text().splitlines()) == 2


def test_plot_script(tmp_path):
    pytest.importorskip("matplotlib")
    metrics = tmp_path / "metrics.json"
    assert eval_main(["--data_path", str(_write(tmp_path / "a.jsonl", [DET_A, DET_B, *GUI])),
                      "--output_path", str(metrics)], "metrics") == 0
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import plot_eval
    finally:
        sys.path.pop(0)
    png = tmp_path / "plot.png"
    assert plot_eval.main([str(metrics), str(tmp_path / "a.jsonl"), "--labels", "saved", "jsonl", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [t for t, _ in plot_eval.panels({"r": json.loads(metrics.read_text())})]
    assert titles == ["F1 @ IoU 0.5", "mean F1 @ IoU 0.5:0.95", "GUI accuracy"]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
