"""The include order of cpp/ (cpp/layers.txt), checked by tests/check_layers.py: the real tree passes,
and an upward or sideways include in a copy of it is caught."""
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECK = REPO / "tests" / "check_layers.py"


def run(root):
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True)


def test_the_tree_follows_the_layers():
    r = run(REPO)
    assert r.returncode == 0, r.stdout


def test_upward_and_sideways_includes_are_caught(tmp_path):
    shutil.copytree(REPO / "cpp", tmp_path / "cpp")
    kernel = tmp_path / "cpp" / "kernels" / "gemm.cpp"
    kernel.write_text('#include "decoder/decoder.h"\n' + kernel.read_text())  # kernels must not see the model
    vision = tmp_path / "cpp" / "vision" / "projector.cpp"
    vision.write_text('#include "decoder/kv_cache.h"\n' + vision.read_text())  # sideways
    (tmp_path / "cpp" / "stray.cpp").write_text("int x;\n")
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "bind_x.cpp").write_text('#include "decoder/sampler.h"\n#include "engine/engine.h"\n')
    r = run(tmp_path)
    assert r.returncode == 1
    assert "cpp/kernels/gemm.cpp: includes \"decoder/decoder.h\"" in r.stdout
    assert "cpp/vision/projector.cpp: includes \"decoder/kv_cache.h\"" in r.stdout
    assert "cpp/stray.cpp" in r.stdout
    assert "python/bind_x.cpp: includes \"decoder/sampler.h\"" in r.stdout and "engine/engine.h" not in r.stdout
