"""The main job from the README: the `locateanything` command with a model, with --demo, and without
a model (a clear message and the download command, exit code 2); its JSON records, --draw, folders,
--max-image-side, and its errors."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest


def run_cli(args, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.pop("LOCATEANYTHING_MODEL", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "locateanything_native", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_without_a_model_prints_the_download_command(tmp_path, fixtures_dir):
    r = run_cli(["--image", str(fixtures_dir / "images" / "img3_28x28.png"), "--task", "detect", "--categories", "a"],
                {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "c")})
    assert r.returncode == 2
    assert "huggingface-cli download nvidia/LocateAnything-3B" in r.stderr
    assert "--demo" in r.stderr


def test_model_from_env_var_and_hf_cache(tmp_path, fixtures_dir):
    from locateanything_native import find_model

    os.environ["LOCATEANYTHING_MODEL"] = str(fixtures_dir / "tiny-a")
    try:
        assert find_model() == str(fixtures_dir / "tiny-a")
    finally:
        del os.environ["LOCATEANYTHING_MODEL"]
    snap = tmp_path / "hub" / "models--nvidia--LocateAnything-3B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt"):  # what a checkpoint needs
        (snap / name).write_text("{}")
    (tmp_path / "hub" / "models--nvidia--LocateAnything-3B" / "refs").mkdir()
    (tmp_path / "hub" / "models--nvidia--LocateAnything-3B" / "refs" / "main").write_text("abc123")
    old = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(tmp_path / "hub")
    try:
        assert find_model() == str(snap)
        assert find_model("nvidia/LocateAnything-3B") == str(snap)
    finally:
        if old is None:
            del os.environ["HF_HUB_CACHE"]
        else:
            os.environ["HF_HUB_CACHE"] = old
    with pytest.raises(FileNotFoundError, match="config.json"):
        find_model(tmp_path)


def test_demo_runs_the_whole_pipeline(tmp_path):
    r = run_cli(["--demo", "--json", "--task", "detect", "--categories", "square,circle"],
                {"LOCATEANYTHING_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "RANDOM" in r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(rec) >= {"answer", "boxes", "points", "timings", "stop_reason"}
    assert rec["timings"]["vision"] > 0


@pytest.mark.parametrize("task,extra", [
    ("detect", ["--categories", "square,circle"]),
    ("ground-single", ["--phrase", "a red square"]),
    ("ground-multi", ["--phrase", "squares"]),
    ("ground-text", ["--phrase", "STOP"]),
    ("detect-text", []),
    ("ground-gui", ["--phrase", "the button"]),
    ("point", ["--phrase", "the circle"]),
    ("raw", ["--prompt", "Point to: the circle."]),
])
def test_every_task_with_the_fixture_model(fixtures_dir, task, extra):
    img = fixtures_dir / "images" / "img1_333x517.png"
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", str(img), "--task", task, *extra,
                 "--json", "--max-new-tokens", "16", "--threads", "2"])
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["image"] == str(img) and (rec["width"], rec["height"]) == (333, 517)
    assert isinstance(rec["answer"], str) and rec["timings"]["generated_tokens"] > 0
    for b in rec["boxes"]:
        assert {"x1", "y1", "x2", "y2", "label"} <= set(b)


RECORD_KEYS = ["image", "width", "height", "input_width", "input_height", "task", "question", "generation_mode",
               "answer", "boxes", "points", "stop_reason", "timings"]


def tiny(fixtures_dir, *args, max_new_tokens="16"):
    """Arguments for a short run on the fixture checkpoint."""
    return ["--model", str(fixtures_dir / "tiny-a"), "--threads", "2", "--max-new-tokens", max_new_tokens, *args]


def records(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_json_record_is_complete_and_stable(fixtures_dir):
    from locateanything_native import LocateAnythingWorker

    img = fixtures_dir / "images" / "img0_640x360.png"
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--task", "detect", "--categories", "square, circle",
                     "--generation-mode", "slow", "--json"))
    assert r.returncode == 0, r.stderr
    (rec,) = records(r.stdout)
    assert list(rec) == RECORD_KEYS
    assert (rec["width"], rec["height"], rec["input_width"], rec["input_height"]) == (640, 360, 640, 360)
    assert rec["task"] == "detect" and rec["generation_mode"] == "slow"
    assert rec["question"] == "Locate all the instances that matches the following description: square</c>circle."
    assert isinstance(rec["stop_reason"], str) and rec["stop_reason"]
    assert rec["boxes"] and all(list(b) == ["label", "x1", "y1", "x2", "y2", "score"] for b in rec["boxes"])
    assert all(0 < b["score"] <= 1 for b in rec["boxes"])
    plain = [{k: b[k] for k in ("x1", "y1", "x2", "y2")} for b in rec["boxes"]]
    assert plain == LocateAnythingWorker.parse_boxes(rec["answer"], 640, 360)
    t = rec["timings"]
    for key in ("preprocess", "vision", "projector", "prefill", "decode", "total", "prompt_tokens", "image_tokens",
                "generated_tokens", "forward_calls", "tokens_per_second"):
        assert key in t, key
    assert t["generated_tokens"] == 16 and t["vision"] > 0
    assert "eta" not in r.stderr  # no progress bar when stderr is not a terminal
    # Points carry {label, x, y}.
    r = run_cli(tiny(fixtures_dir, "--image", str(fixtures_dir / "images" / "img3_28x28.png"), "--task", "point",
                     "--phrase", "the circle", "--generation-mode", "fast", "--json", max_new_tokens="64"))
    assert r.returncode == 0, r.stderr
    (rec,) = records(r.stdout)
    assert list(rec) == RECORD_KEYS
    assert all(list(p) == ["label", "x", "y", "score"] for p in rec["points"])


def test_command_line_as_people_type_it(fixtures_dir, tmp_path):
    """Space-separated and repeated --categories, a shell glob after one --image, an unquoted --phrase, the
    Python method name for --task, and the documented int4-visf quantisation (see also test_cli_args.py)."""
    images = fixtures_dir / "images"
    first, second = str(images / "img3_28x28.png"), str(images / "img1_333x517.png")
    r = run_cli(tiny(fixtures_dir, "--image", first, second, "--categories", "traffic light,car", "--categories",
                     "dog", "cat", "--json", max_new_tokens="4"))
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    assert [x["image"] for x in recs] == [first, second]
    assert recs[0]["question"].endswith("traffic light</c>car</c>dog</c>cat.")
    r = run_cli(tiny(fixtures_dir, "--image", first, "--task", "ground_single", "--phrase", "the", "red", "car",
                     "--quantization", "int4-visf", "--json", max_new_tokens="4"))
    assert r.returncode == 0, r.stderr
    (rec,) = records(r.stdout)
    assert rec["task"] == "ground-single" and "the red car" in rec["question"]
    r = run_cli(tiny(fixtures_dir, "--image", first, "--task", "ground_sngle", "--phrase", "x"))
    assert r.returncode == 2 and "invalid choice" in r.stderr and "ground-single" in r.stderr


def test_draw_one_image(fixtures_dir, tmp_path):
    from PIL import Image

    img = fixtures_dir / "images" / "img0_640x360.png"
    out = tmp_path / "boxes.png"
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square", "--generation-mode", "slow",
                     "--draw", str(out)))
    assert r.returncode == 0, r.stderr
    assert f"drawn: {out}" in r.stdout and "box" in r.stdout and "time:" in r.stdout
    drawn = np.asarray(Image.open(out).convert("RGB"))
    original = np.asarray(Image.open(img).convert("RGB"))
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)
    # JPEG works too; an unknown extension or a missing folder is refused before the model loads.
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square", "--draw", str(tmp_path / "b.jpg")))
    assert r.returncode == 0 and (tmp_path / "b.jpg").stat().st_size > 0
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square", "--draw", str(tmp_path / "b.xyz")))
    assert r.returncode == 2 and "unknown image type" in r.stderr
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square", "--draw", str(tmp_path / "no" / "b.png")))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_folder_input_and_drawing_into_a_folder(fixtures_dir, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(fixtures_dir / "images" / "img3_28x28.png", first / "b.png")
    shutil.copy(fixtures_dir / "images" / "img1_333x517.png", first / "a.png")
    shutil.copy(fixtures_dir / "images" / "img0_640x360.png", second / "a.png")  # same name in another folder
    (first / "notes.txt").write_text("not an image")
    r = run_cli(tiny(fixtures_dir, "--image", str(first), "--image", str(second), "--categories", "square",
                     "--json", "--draw", str(tmp_path / "drawn")))
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    assert [pathlib.Path(x["image"]).relative_to(tmp_path).as_posix() for x in recs] == ["first/a.png", "first/b.png",
                                                                                          "second/a.png"]
    assert [(x["width"], x["height"]) for x in recs] == [(333, 517), (28, 28), (640, 360)]
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["a-1.png", "a.png", "b.png"]
    # A folder with one image still draws into a folder (named after the image).
    r = run_cli(tiny(fixtures_dir, "--image", str(second), "--categories", "square", "--draw", str(tmp_path / "one")))
    assert r.returncode == 0 and (tmp_path / "one" / "a.png").is_file()


def test_max_image_side_maps_back_to_original_pixels(fixtures_dir, tmp_path):
    from PIL import Image

    from locateanything_native import LocateAnythingWorker

    img = fixtures_dir / "images" / "img0_640x360.png"
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square,circle", "--generation-mode", "slow",
                     "--max-image-side", "400", "--json", "--draw", str(tmp_path / "d.png")))
    assert r.returncode == 0, r.stderr
    (rec,) = records(r.stdout)
    assert (rec["width"], rec["height"], rec["input_width"], rec["input_height"]) == (640, 360, 400, 225)
    assert rec["boxes"]
    # Exactly what the official parser gives at the original size (the answer is relative to the whole image).
    assert [{k: b[k] for k in ("x1", "y1", "x2", "y2")} for b in rec["boxes"]] == \
        LocateAnythingWorker.parse_boxes(rec["answer"], 640, 360)
    assert Image.open(tmp_path / "d.png").size == (640, 360)
    # Images that already fit are left alone.
    r = run_cli(tiny(fixtures_dir, "--image", str(img), "--categories", "square", "--max-image-side", "640", "--json"))
    assert (records(r.stdout)[0]["input_width"], records(r.stdout)[0]["input_height"]) == (640, 360)


def test_sampling_options_are_reproducible(fixtures_dir):
    args = tiny(fixtures_dir, "--image", str(fixtures_dir / "images" / "img3_28x28.png"), "--categories", "square",
                "--temperature", "0.7", "--top-p", "0.9", "--top-k", "50", "--repetition-penalty", "1.1", "--json")
    a = run_cli([*args, "--seed", "3"])
    b = run_cli([*args, "--seed", "3"])
    assert a.returncode == 0, a.stderr
    assert records(a.stdout)[0]["answer"] == records(b.stdout)[0]["answer"]
    r = run_cli(tiny(fixtures_dir, "--image", str(fixtures_dir / "images" / "img3_28x28.png"), "--categories", "x",
                     "--chat-template", "eval", "--loop-guard", "--json"))
    assert r.returncode == 0, r.stderr


def test_bad_arguments_exit_nonzero(fixtures_dir, tmp_path):
    img = str(fixtures_dir / "images" / "img3_28x28.png")
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", "/nonexistent.jpg", "--task", "detect",
                 "--categories", "a"])
    assert r.returncode != 0 and "not found" in r.stderr
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", img, "--task", "point"])
    assert r.returncode != 0 and "--phrase" in r.stderr
    for bad, message in [(["--task", "detect"], "--categories"), (["--categories", " , "], "--categories"),
                         (["--task", "raw"], "--prompt"), (["--categories", "a", "--max-new-tokens", "0"], "at least 1"),
                         (["--categories", "a", "--top-p", "0"], "--top-p"),
                         (["--categories", "a", "--temperature", "-1"], "--temperature"),
                         (["--categories", "a", "--threads", "-2"], "--threads"),
                         (["--categories", "a", "--max-image-side", "-5"], "--max-image-side"),
                         (["--task", "nonsense"], "invalid choice")]:
        r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", img, *bad])
        assert r.returncode == 2 and message in r.stderr, (bad, r.stderr)
        assert "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", str(empty), "--categories", "a"])
    assert r.returncode == 2 and "no images in folder" in r.stderr
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--categories", "a"])
    assert r.returncode == 2 and "--image" in r.stderr
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", img, "--categories", "a", "--quantization", "q9"])
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in ("model.safetensors", "vocab.json", "merges.txt"):  # all files there, so the config is what fails
        shutil.copy(fixtures_dir / "tiny-a" / name, broken / name)
    (broken / "config.json").write_text("{ not json")
    r = run_cli(["--model", str(broken), "--image", img, "--categories", "a"])
    assert r.returncode == 1 and "cannot load the model" in r.stderr and "Traceback" not in r.stderr


def test_one_bad_image_in_a_folder_fails_the_run_but_not_the_others(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "images" / "img3_28x28.png", tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
    r = run_cli(tiny(fixtures_dir, "--image", str(tmp_path), "--categories", "a", "--json"))
    assert r.returncode == 1
    assert [pathlib.Path(x["image"]).name for x in records(r.stdout)] == ["good.png"]
    assert "broken.png" in r.stderr and "1 of 2 images failed" in r.stderr and "Traceback" not in r.stderr


def test_first_load_says_what_it_is_doing(fixtures_dir, tmp_path):
    img = fixtures_dir / "images" / "img0_640x360.png"
    env = {"LOCATEANYTHING_CACHE": str(tmp_path)}
    first = run_cli(tiny(fixtures_dir, "--image", str(img), "--quantization", "int4", "--phrase", "x", "--task",
                         "point"), env)
    assert first.returncode == 0, first.stderr
    assert "quantising the weights (int4) once into the packed cache" in first.stderr
    assert str(tmp_path) in first.stderr and "loaded in" in first.stderr
    again = run_cli(tiny(fixtures_dir, "--image", str(img), "--quantization", "int4", "--phrase", "x", "--task",
                         "point"), env)
    assert "mapping the packed weight cache" in again.stderr and "quantising" not in again.stderr


def test_load_reporter_draws_a_bar_on_a_terminal():
    import io

    from locateanything_native.console import LoadReporter

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, bar in ((Tty(), True), (io.StringIO(), False)):
        rep = LoadReporter(stream)
        rep("open", 0, "loading x")
        rep("build_cache", 0, "quantising the weights once")
        for f in (0.25, 0.5, 1.0):
            rep("quantise", f, "")
        rep("done", 1, "loaded in 1.0 s")
        text = stream.getvalue()
        assert "quantising the weights once\n" in text and text.endswith("loaded in 1.0 s\n")
        assert ("100%" in text) == bar and ("[###" in text) == bar
