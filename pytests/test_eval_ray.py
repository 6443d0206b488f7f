"""`locateanything eval --ray`: the rows spread over engine actors of a local Ray cluster give the same
output file, byte for byte, as the serial run (sampling included: seeds are per row); an actor killed
mid-run is restarted by Ray and the file still holds every row exactly once."""
import json
import os

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install '.[ray]'); CI installs it")

from locateanything_native.cluster import DIE_ONCE_ENV  # noqa: E402
from locateanything_native.eval import EvalOptions, evaluate  # noqa: E402

N_ROWS = 12


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-markers")


@pytest.fixture(scope="module")
def local_ray(marker_dir):
    # One actor dies on its first call, once (the marker file records that it happened).
    marker = str(marker_dir / "died")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {DIE_ONCE_ENV: marker}})
    yield marker
    ray.shutdown()


def _bench(tmp_path):
    names = ["img3_28x28.png", "img1_333x517.png", "img0_640x360.png"]
    rows = [{"image_path": names[i % 3], "categories": [f"thing {i}"], "gt": {"thing": [[0, 0, 5, 5]]},
             "dataset_name": "HumanRef", "task_name": "referring_object_detection"} for i in range(N_ROWS)]
    rows.insert(5, {"image_path": "missing.png", "categories": ["x"], "gt": {}, "dataset_name": "HumanRef",
                    "task_name": "referring_object_detection"})
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return bench


def _options(fixtures_dir, bench, out, **kw):
    return EvalOptions(test_jsonl_path=str(bench), save_path=str(out), model_path=str(fixtures_dir / "tiny-a"),
                       image_root_dir=str(fixtures_dir / "images"), quantization="none", max_new_tokens=24,
                       generation_mode="hybrid", seed=3, threads=1, batch_size=2, progress=False, **kw)


def test_ray_rows_equal_the_serial_run_and_survive_a_killed_actor(local_ray, fixtures_dir, tmp_path):
    bench = _bench(tmp_path)
    serial = evaluate(_options(fixtures_dir, bench, tmp_path / "serial.jsonl"))
    on_ray = evaluate(_options(fixtures_dir, bench, tmp_path / "ray.jsonl", ray="", ray_cpus_per_actor=1, workers=2))
    assert os.path.exists(local_ray), "no actor was killed: the test did not exercise Ray's retry"
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "serial.jsonl").read_bytes()
    assert on_ray.rows == serial.rows == N_ROWS + 1 and on_ray.errors == serial.errors == 1
    journal = (tmp_path / "ray.jsonl.partial.jsonl").read_text().splitlines()[1:]
    assert sorted(json.loads(line)["index"] for line in journal) == list(range(N_ROWS + 1))


def test_image_cli_on_ray_prints_the_serial_records_in_order(local_ray, fixtures_dir, tmp_path, capsys):
    from locateanything_native import cli

    images = [str(fixtures_dir / "images" / n) for n in ("img3_28x28.png", "img0_640x360.png", "img1_333x517.png")]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    args = ["--model", str(fixtures_dir / "tiny-a"), "--quantization", "none", "--max-new-tokens", "16", "--json",
            "--task", "detect", "--categories", "square", "circle", "--image", images[0], str(bad), *images[1:]]
    assert cli.main(args + ["--threads", "1"]) == 1  # the broken image fails, the others run
    serial = capsys.readouterr().out.splitlines()
    assert cli.main(args + ["--ray", "--ray-actors", "2", "--ray-cpus-per-actor", "1"]) == 1
    out = capsys.readouterr()
    on_ray = out.out.splitlines()
    def without_timings(line):
        return {k: v for k, v in json.loads(line).items() if k != "timings"}

    assert [without_timings(r) for r in on_ray] == [without_timings(r) for r in serial] and len(serial) == 3
    assert "broken.jpg" in out.err
