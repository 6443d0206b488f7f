"""The main job from the README: the `locateanything` command with a model, with --demo, and without
a model (a clear message and the download command, exit code 2)."""
import json
import os
import subprocess
import sys

import pytest


def run_cli(args, env_extra=None, cwd=None):
    env = dict(os.environ)
    env.pop("LOCATEANYTHING_MODEL", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "locateanything_native", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_without_a_model_prints_the_download_command(tmp_path):
    r = run_cli(["--image", "x.jpg", "--task", "detect", "--categories", "a"],
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
    (snap / "config.json").write_text("{}")
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


def test_bad_arguments_exit_nonzero(fixtures_dir):
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", "/nonexistent.jpg", "--task", "detect",
                 "--categories", "a"])
    assert r.returncode != 0 and "not found" in r.stderr
    r = run_cli(["--model", str(fixtures_dir / "tiny-a"), "--image", str(fixtures_dir / "images" / "img3_28x28.png"),
                 "--task", "point"])
    assert r.returncode != 0 and "--phrase" in r.stderr
