"""`locateanything eval` / locateanything_native.eval.runner: the records of the official scripts (built here
from the engine's raw answers and the scripts' rules), bad rows, batching, seeds, resume bookkeeping, the
worker classes, and the record contents on hand-made answers (a fake engine)."""
import json
import os
import pathlib
import re
import warnings

import numpy as np
import pytest

import locateanything_native as la
from locateanything_native.eval import (DetectionEvalWorker, EvalOptions, GroundingEvalWorker, SSProEvalWorker,
                                        evaluate, parse_prediction, read_rows, run_rows)
from locateanything_native.eval.cli import main as eval_main

Image = pytest.importorskip("PIL.Image")

LOCATE_ALL = "Locate all the instances that matches the following description: "
LOCATE_ONE = "Locate a single instance that matches the following description: "
TOKENS = 24
KEYS = ["image_path", "extracted_predictions", "gt", "question", "dataset_name", "raw_response", "task_name"]


@pytest.fixture(scope="module")
def model(fixtures_dir):
    return str(fixtures_dir / "tiny-a")


@pytest.fixture(scope="module")
def images(fixtures_dir):
    return fixtures_dir / "images"


@pytest.fixture(scope="module")
def engine(model):
    return la.Engine(model, quantization="none")


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def cli(*args):
    return eval_main([str(a) for a in args], "eval")


GROUNDING_ROWS = [
    {"image_path": "img3_28x28.png", "categories": ["a man", "the dog"], "gt": {"a man": [[1, 2, 3, 4]]},
     "dataset_name": "HumanRef", "task_name": "referring_object_detection"},
    {"image_path": "img1_333x517.png", "categories": "the red square", "gt": {"gt_mask": {"x": [[1, 2, 3, 4]]}},
     "dataset_name": "RefCOCOg_val", "task_name": "referring_object_detection", "question": "unused"},
    {"image_path": "img3_28x28.png", "categories": ["text"], "gt": {}, "dataset_name": "IC15", "task_name": "ocr"},
    {"image_path": "img0_640x360.png", "categories": ["square", "circle, square"], "gt": {"square": [[0, 0, 9, 9]]},
     "dataset_name": "COCO", "task_name": "common_object_detection"},
    {"image_path": "img3_28x28.png", "categories": "b, a, b", "gt": {}, "dataset_name": "VisDrone", "task_name": "pointing"},
    {"image_path": "img1_333x517.png", "categories": ["x"], "gt": {}, "dataset_name": "Dense200", "task_name": "dense"},
]


def official_questions(row, eval_type):
    """The questions inference_grounding_ddp.py asks for a row, written out from its rules."""
    cats = row["categories"]
    cats = [c.strip() for c in cats.split(",") if c.strip()] if isinstance(cats, str) else \
        list(dict.fromkeys(p.strip() for c in cats for p in c.split(",") if p.strip()))
    ds = row["dataset_name"]
    if eval_type == "point_eval" and ds in ("COCO", "LVIS_fullval", "VisDrone"):
        return cats, [f"Point to: {c}." for c in cats]
    if eval_type == "point_eval":
        return cats, ["Point to: " + ", ".join(cats) + "."]
    if ds == "HumanRef":
        return cats, [LOCATE_ALL + ", ".join(cats) + "."]
    if ds in ("RefCOCOg_val", "RefCOCOg_test"):
        return cats, [LOCATE_ONE + ", ".join(cats) + "."]
    if ds in ("TotalText", "SROIE", "IC15", "HierText"):
        return cats, ["Detect all the text in box format." + ", ".join(cats) + "."]
    return cats, [LOCATE_ALL + "</c>".join(cats) + "."]


def official_record(engine, images, row, eval_type, short_side=None):
    img = Image.open(images / row["image_path"]).convert("RGB")
    scale = 1.0
    if short_side is not None:
        w, h = img.size
        scale = short_side / min(w, h)
        img = img.resize((short_side, int(h * scale)) if w <= h else (int(w * scale), short_side), Image.BILINEAR)
    arr = np.asarray(img)
    cats, questions = official_questions(row, eval_type)
    answers = [engine.run(arr, q, generation_mode="hybrid", max_new_tokens=TOKENS, temperature=0.0, top_p=0.9,
                          repetition_penalty=1.1, chat_template="eval").answer for q in questions]
    per_category = eval_type == "point_eval" and row["dataset_name"] in ("COCO", "LVIS_fullval", "VisDrone")
    if per_category:
        preds, raw_by_cat = {}, {}
        for c, a in zip(cats, answers):
            raw_by_cat[c] = a
            preds.setdefault(c, []).extend(p for v in parse_prediction(a, *img.size).values() for p in v if len(p) == 2)
        raw, question = "\n".join(answers), " | ".join(questions)
    else:
        raw, question = answers[0], questions[0]
        preds = parse_prediction(raw, *img.size)
    if short_side is not None and scale != 1.0:
        preds = {k: [[x / scale for x in c] for c in v] for k, v in preds.items()}
    gt = row["gt"]["gt_mask"] if "gt_mask" in row["gt"] else row["gt"]
    record = {"image_path": row["image_path"], "extracted_predictions": preds, "gt": gt, "question": question,
              "dataset_name": row["dataset_name"], "raw_response": raw, "task_name": row["task_name"]}
    if per_category:
        record["per_category_outputs"] = raw_by_cat
    return record


@pytest.mark.parametrize("eval_type,short_side", [("box_eval", None), ("point_eval", None), ("point_eval", 100)])
def test_records_match_the_official_rules(tmp_path, model, images, engine, eval_type, short_side):
    bench = write_jsonl(tmp_path / "bench.jsonl", GROUNDING_ROWS)
    out = tmp_path / "out" / "answer.jsonl"
    args = ["--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--save_path", out,
            "--eval_type", eval_type, "--max_new_tokens", TOKENS, "--quantization", "none", "--temperature", "0",
            "--no_scores", "--no_progress", "--format", "grounding"]
    if short_side:
        args += ["--short_side_size", short_side]
    assert cli(*args) == 0
    expected = [official_record(engine, images, row, eval_type, short_side) for row in GROUNDING_ROWS]
    text = out.read_text()
    assert text == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected)  # byte for byte
    for rec in read_jsonl(out):
        assert list(rec)[:7] == KEYS


def test_bad_rows_become_error_records(tmp_path, model, images, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    rows = [
        {"image_path": "img3_28x28.png", "categories": ["a"], "gt": {}, "dataset_name": "D", "task_name": "t"},
        {"image_path": "missing.png", "categories": ["a"], "gt": {}, "dataset_name": "D", "task_name": "t"},
        "{this is not json",
        {"image_path": "img3_28x28.png", "gt": {}, "dataset_name": "D", "task_name": "t"},  # no categories
        "",  # blank lines are skipped, as the scripts do
        str(tmp_path / "broken.png").join(['{"image_path": "', '", "categories": ["a"], "gt": {}, "dataset_name": "D", '
                                                                '"task_name": "t"}']),
        "[1, 2]",
        {"image_path": "img1_333x517.png", "categories": ["b"], "gt": {}, "dataset_name": "D", "task_name": "t"},
    ]
    bench = write_jsonl(tmp_path / "bench.jsonl", rows)
    out = tmp_path / "answer.jsonl"
    rc = cli("--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--save_path", out,
             "--max_new_tokens", 8, "--quantization", "none", "--no_progress")
    assert rc == 1
    err = capsys.readouterr().err
    assert "5 rows could not run" in err
    recs = read_jsonl(out)
    assert len(recs) == 7
    assert ["error" in r for r in recs] == [False, True, True, True, True, True, False]
    assert "image not found" in recs[1]["error"] and recs[1]["question"] == LOCATE_ALL + "a."
    assert "line 3 is not valid JSON" in recs[2]["error"]
    assert "line 4: missing key 'categories'" in recs[3]["error"]
    assert "cannot read image" in recs[4]["error"]
    assert "line 7 is not a JSON object" in recs[5]["error"]
    for r in recs:
        assert list(r)[:7] == KEYS
        if "error" in r:
            assert r["extracted_predictions"] == {} and r["raw_response"] == ""
    assert recs[0]["raw_response"] and recs[6]["raw_response"]
    # A re-run retries only the error rows; the answers already there are kept.
    journal_lines = len((tmp_path / "answer.jsonl.partial.jsonl").read_text().splitlines())
    assert cli("--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--save_path", out,
               "--max_new_tokens", 8, "--quantization", "none", "--no_progress") == 1
    assert "2 already done, 5 to run" in capsys.readouterr().err
    assert len((tmp_path / "answer.jsonl.partial.jsonl").read_text().splitlines()) == journal_lines + 5
    assert read_jsonl(out) == recs


def sampling_rows(n=8):
    names = ["img3_28x28.png", "img3_28x28.png", "img1_333x517.png", "img0_640x360.png"]
    return [{"image_path": names[i % 4], "categories": ["square", "circle"][: 1 + i % 2], "gt": {},
             "dataset_name": ["COCO", "HumanRef"][i % 2], "task_name": "pointing"} for i in range(n)]


def test_sampled_records_do_not_depend_on_batching_limit_or_resume(tmp_path, model, images, capsys):
    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows())
    base = ["--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--max_new_tokens", 16,
            "--quantization", "none", "--eval_type", "point_eval", "--no_progress"]
    common = base + ["--seed", 5]
    assert cli(*common, "--save_path", tmp_path / "a.jsonl", "--batch_size", 1) == 0
    assert cli(*common, "--save_path", tmp_path / "b.jsonl", "--batch_size", 8, "--batch_images", 3) == 0
    assert cli(*common, "--save_path", tmp_path / "c.jsonl", "--limit", 3) == 0
    assert len(read_jsonl(tmp_path / "c.jsonl")) == 3
    assert cli(*common, "--save_path", tmp_path / "c.jsonl") == 0  # continues after the limit
    assert "3 already done, 5 to run" in capsys.readouterr().err
    a = (tmp_path / "a.jsonl").read_text()
    assert a == (tmp_path / "b.jsonl").read_text() == (tmp_path / "c.jsonl").read_text()
    # Another seed samples differently (temperature 0.7, the scripts' default).
    assert cli(*base, "--seed", 6, "--save_path", tmp_path / "d.jsonl") == 0
    assert (tmp_path / "d.jsonl").read_text() != a


def test_two_worker_processes_give_the_same_records(tmp_path, model, images):
    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows(6))
    common = ["--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--max_new_tokens", 12,
              "--quantization", "none", "--seed", 1, "--no_progress", "--batch_size", 1]
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(pathlib.Path(la.__file__).parent.parent), env_path])
    try:
        assert cli(*common, "--save_path", tmp_path / "one.jsonl") == 0
        assert cli(*common, "--save_path", tmp_path / "two.jsonl", "--workers", 2, "--threads", 2) == 0
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert (tmp_path / "one.jsonl").read_text() == (tmp_path / "two.jsonl").read_text()


def test_a_journal_of_another_run_is_not_mixed_in(tmp_path, model, images, capsys):
    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows(2))
    common = ["--model_path", model, "--test_jsonl_path", bench, "--image_root_dir", images, "--max_new_tokens", 8,
              "--quantization", "none", "--no_progress", "--save_path", tmp_path / "out.jsonl"]
    assert cli(*common) == 0
    assert cli(*common, "--seed", 9) == 2
    assert "differs in: seed" in capsys.readouterr().err
    assert cli(*common, "--seed", 9, "--overwrite") == 0
    with pytest.raises(SystemExit):  # argparse: a wrong choice
        cli(*common, "--eval_type", "bad")


def test_quantised_runs_fingerprint_the_numerics(tmp_path):
    # A quantised plan's records change when its numerics do (e.g. the Pow2 activation scales of the
    # INT4 products) and with the CPU's vision attention (bf16 units or not): a journal of another
    # version must not be resumed into the same output. The exact path depends on neither, so its
    # fingerprint keeps no such key and older journals of it stay resumable.
    from locateanything_native.eval.runner import Journal, JournalMismatch, fingerprint

    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows(1))
    kernels = la._core.kernels()
    int4 = fingerprint(EvalOptions(str(bench), str(tmp_path / "o.jsonl"), quantization="int4"), "grounding", "m")
    assert int4["numerics"] == {"quant": kernels["quant_numerics"],
                                "vision_attention": kernels["vision_attention_quantised"]}
    assert kernels["quant_numerics"] >= 2
    none = fingerprint(EvalOptions(str(bench), str(tmp_path / "o.jsonl"), quantization="none"), "grounding", "m")
    assert "numerics" not in none
    older = dict(int4, numerics=dict(int4["numerics"], quant=int4["numerics"]["quant"] - 1))
    path = str(tmp_path / "o.jsonl.partial.jsonl")
    Journal(path, older).open().close()
    with pytest.raises(JournalMismatch, match="differs in: numerics"):
        Journal(path, int4).open()


def test_official_flags_and_spellings(tmp_path, model, images, monkeypatch):
    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows(1))
    monkeypatch.setenv("LOCATEANYTHING_MODEL", model)
    rc = cli("--test-jsonl-path", bench, "--image-root-dir", images, "--save-path", tmp_path / "o.jsonl",
             "--max-new-tokens", 8, "--quantization", "none", "--num_workers", 4, "--world_size", 1, "--local_rank", 0,
             "--master_port", "29500", "--no-progress")
    assert rc == 0 and len(read_jsonl(tmp_path / "o.jsonl")) == 1
    assert eval_main([], "prepare") == 2


def test_worker_classes(model, images, engine):
    from locateanything_native.eval import workers as workers_module

    workers_module._device_warned = False
    img = Image.open(images / "img3_28x28.png").convert("RGB")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = GroundingEvalWorker(model, "cuda:0", "slow", engine=engine, temperature=0)
        d = DetectionEvalWorker(model, device="cuda:1", engine=engine, temperature=0)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert g.device == "cpu" and g.generation_mode == "slow" and g.model_id == model
    text, question = g.generate(img, ["a", "b"], max_new_tokens=TOKENS)
    assert question == LOCATE_ALL + "a</c>b."
    expected = engine.run(np.asarray(img), question, generation_mode="slow", max_new_tokens=TOKENS, temperature=0.0,
                          top_p=0.9, repetition_penalty=1.1, chat_template="eval").answer
    assert text == expected and g.last_result.answer == expected
    assert g.generate(img, ["a", "b"], TOKENS, "Point to: ")[1] == "Point to: a, b."
    assert g.generate_single_category_pointing(img, "dog", max_new_tokens=TOKENS)[1] == "Point to: dog."
    messages, q = g.build_messages(img, ["x"], question_override="Point to: ")
    assert q == "Point to: x." and messages[0]["content"][1] == {"type": "text", "text": "Point to: x."}
    assert d.generate(img, ["a", "b"], max_new_tokens=8)[1] == LOCATE_ALL + "a</c>b."
    s = SSProEvalWorker(model, "cpu", engine=engine)
    answer = s.generate(img, "Point to: the button.", max_new_tokens=8)
    assert isinstance(answer, str)
    # Sampling at the scripts' temperature: a worker seed makes the sequence of calls reproducible.
    a = GroundingEvalWorker(model, "cpu", engine=engine, seed=3)
    b = GroundingEvalWorker(model, "cpu", engine=engine, seed=3)
    assert [a.generate(img, ["x"], 16)[0] for _ in range(2)] == [b.generate(img, ["x"], 16)[0] for _ in range(2)]
    with pytest.raises(ValueError):
        GroundingEvalWorker(model, "cpu", "turbo", engine=engine)


# ---------------------------------------------------------------- record contents on hand-made answers

class FakeResult:
    def __init__(self, answer, boxes=(), points=()):
        self.answer, self.boxes, self.points = answer, list(boxes), list(points)


class FakeEngine:
    """Answers by question; records the calls."""

    def __init__(self, answers, scores=True):
        self.answers, self.scores, self.calls = answers, scores, []

    def run_batch(self, requests, **options):
        self.calls.append([(r["question"], r["image"].shape, r["seed"]) for r in requests])
        out = []
        for r in requests:
            answer = self.answers.get(r["question"], "<|im_end|>")
            n_boxes = len(re.findall(r"<box>(?:<\d+>){4}</box>", answer))
            n_points = len(re.findall(r"<box>(?:<\d+>){2}</box>", answer))
            mk = (lambda i: {"score": 0.5 + i / 100}) if self.scores else (lambda i: {})
            out.append(FakeResult(answer, [mk(i) for i in range(n_boxes)], [mk(50 + i) for i in range(n_points)]))
        return out


def fake_rows(entries):
    return [{"index": i, "line": i + 1, "entry": e} for i, e in enumerate(entries)]


def test_per_category_pointing_record(images):
    answers = {"Point to: cat.": "<ref>kitty</ref><box><500><500></box><box><0><0><10><10></box><|im_end|>",
               "Point to: dog.": "<ref>dog</ref><box><100><200></box><box><1000><1000></box><|im_end|>"}
    eng = FakeEngine(answers)
    opts = EvalOptions("x", "y", image_root_dir=str(images), eval_type="point_eval", short_side_size=180)
    row = {"image_path": "img0_640x360.png", "categories": "cat, dog, bird", "gt": {"cat": []},
           "dataset_name": "COCO", "task_name": "pointing"}
    (rec,) = run_rows(eng, fake_rows([row]), opts)
    assert len(eng.calls) == 1 and [q for q, _, _ in eng.calls[0]] == ["Point to: cat.", "Point to: dog.", "Point to: bird."]
    assert eng.calls[0][0][1] == (180, 320, 3)  # the resized image (short side 180)
    # Points only, filed under the queried category; resized pixels divided by the scale (0.5).
    assert rec["extracted_predictions"] == {"cat": [[320.0, 180.0]], "dog": [[64.0, 72.0], [638.0, 358.0]], "bird": []}
    assert rec["per_category_outputs"] == {"cat": answers["Point to: cat."], "dog": answers["Point to: dog."],
                                           "bird": "<|im_end|>"}
    assert rec["raw_response"] == "\n".join([answers["Point to: cat."], answers["Point to: dog."], "<|im_end|>"])
    assert rec["question"] == "Point to: cat. | Point to: dog. | Point to: bird."
    assert rec["scores"] == {"cat": [0.5 + 50 / 100], "dog": [0.5 + 50 / 100, 0.5 + 51 / 100], "bird": []}
    assert list(rec) == KEYS + ["per_category_outputs", "scores"]


def test_detection_and_sspro_records(images):
    answer = "<ref>square</ref><box><10><20></box><box><100><200><300><400></box><|im_end|>"
    eng = FakeEngine({LOCATE_ALL + "square</c>circle.": answer, "Point to: the icon.": answer}, scores=False)
    opts = EvalOptions("x", "y", image_root_dir=str(images), format="detection")
    row = {"image_path": "img0_640x360.png", "categories": ["square", "circle"], "gt": {"gt_mask": [[1, 2, 3, 4]]},
           "dataset_name": "COCO", "task_name": "common_object_detection"}
    (rec,) = run_rows(eng, fake_rows([row]), opts)
    assert rec["extracted_predictions"] == {"square": [[64.0, 72.0, 192.0, 144.0]]}  # boxes only
    assert rec["gt"] == [[1, 2, 3, 4]] and "scores" not in rec and list(rec) == KEYS
    opts = EvalOptions("x", "y", image_root_dir=str(images), format="sspro")
    row = {"file_name": "img0_640x360.png", "instruction": "the icon", "answer": [1, 2, 3, 4], "data_type": "icon"}
    (rec,) = run_rows(eng, fake_rows([row]), opts)
    assert list(rec) == ["image_name", "data_type", "data_source", "instruction", "extracted_predictions", "gt",
                         "question", "raw_response"]
    assert rec["data_source"] == "Unknown" and rec["question"] == "Point to: the icon."
    assert rec["extracted_predictions"] == {"square": [[6.4, 7.2], [64.0, 72.0, 192.0, 144.0]]}


def test_rows_on_one_image_share_an_engine_call(images):
    eng = FakeEngine({})
    rows = [{"image_path": name, "categories": [c], "gt": {}, "dataset_name": "D", "task_name": "t"}
            for name, c in [("img3_28x28.png", "a"), ("img3_28x28.png", "b"), ("img1_333x517.png", "c")]]
    opts = EvalOptions("x", "y", image_root_dir=str(images), seed=4)
    run_rows(eng, fake_rows(rows), opts)
    assert [len(c) for c in eng.calls] == [2, 1]
    from locateanything_native.eval.prompts import derive_seed

    assert [s for call in eng.calls for _, _, s in call] == [derive_seed(4, i, 0) for i in range(3)]
    from locateanything_native.eval.runner import pack_rows

    groups = pack_rows(fake_rows(rows), "grounding", opts)
    assert [len(g) for g in groups] == [2, 1]


def test_read_rows(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", ['{"a": 1}', "", "  ", "nope", '"str"'])
    rows = read_rows(str(path))
    assert [(r["index"], r["line"]) for r in rows] == [(0, 1), (1, 4), (2, 5)]
    assert rows[0]["entry"] == {"a": 1} and "error" in rows[1] and "error" in rows[2]


def test_evaluate_api(tmp_path, model, images):
    bench = write_jsonl(tmp_path / "bench.jsonl", sampling_rows(2))
    summary = evaluate(EvalOptions(str(bench), str(tmp_path / "o.jsonl"), model_path=model, image_root_dir=str(images),
                                   max_new_tokens=8, quantization="none", progress=False), log=lambda s: None)
    assert summary.rows == 2 and summary.errors == 0
    assert summary.format == "detection"  # auto: the first row is COCO in box_eval
