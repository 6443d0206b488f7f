"""Finding the checkpoint as the official worker does (models.find_model): Hugging Face cache snapshots
resolved through refs/<revision> or a commit hash (never "the newest folder"), half-finished downloads
reported with the missing files, a download through huggingface_hub.snapshot_download when the package is
there and HF_HUB_OFFLINE is not set (a fake module here: nothing is downloaded), the old message without
it. Also the fixture policy of conftest.py: missing fixtures fail the run unless LA_ALLOW_NO_FIXTURES=1."""
import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

from locateanything_native import models
from locateanything_native.models import find_model

HASH_A = "a" * 40
HASH_B = "b" * 40
REPO_ID = "org/name"
# The checkpoint files of tiny-a (the goldens' sub-folders are not part of a checkpoint).
CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt", "added_tokens.json",
                    "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json",
                    "processor_config.json", "chat_template.json")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, the only one find_model sees, offline."""
    cache = tmp_path / "hub"
    cache.mkdir()
    for var in ("HUGGINGFACE_HUB_CACHE", "LOCATEANYTHING_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def link_checkpoint(src: pathlib.Path, dst: pathlib.Path, skip=()) -> pathlib.Path:
    """A checkpoint folder at dst made of symlinks to src's files (as the cache links snapshots to blobs)."""
    dst.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        if name not in skip and (src / name).exists():
            (dst / name).symlink_to(src / name)
    return dst


def add_snapshot(cache, fixtures_dir, commit, repo_id=REPO_ID, ref=None, skip=()):
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = link_checkpoint(fixtures_dir / "tiny-a", repo / "snapshots" / commit, skip)
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def make_old(path: pathlib.Path):
    os.utime(path, (1_000_000_000, 1_000_000_000))


# ---- the cache: refs and commit hashes ----

def test_refs_main_is_followed_even_when_another_snapshot_is_newer(hub, fixtures_dir):
    main = add_snapshot(hub, fixtures_dir, HASH_A, ref="main")
    add_snapshot(hub, fixtures_dir, HASH_B)  # newer, but not what refs/main names
    make_old(main)
    assert find_model(REPO_ID) == str(main)
    assert find_model(REPO_ID, revision="main") == str(main)
    assert find_model(REPO_ID, None) == str(main)


def test_no_newest_folder_fallback(hub, fixtures_dir):
    # refs/main names a commit whose snapshot is not in the cache: that is "not cached", whatever else is there.
    add_snapshot(hub, fixtures_dir, HASH_B)
    repo = hub / "models--org--name"
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HASH_A)
    with pytest.raises(FileNotFoundError, match="No LocateAnything checkpoint found"):
        find_model(REPO_ID)
    # No refs/main at all: likewise.
    (repo / "refs" / "main").unlink()
    with pytest.raises(FileNotFoundError, match="No LocateAnything checkpoint found"):
        find_model(REPO_ID)


def test_revision_by_commit_hash_and_by_tag(hub, fixtures_dir):
    main = add_snapshot(hub, fixtures_dir, HASH_A, ref="main")
    other = add_snapshot(hub, fixtures_dir, HASH_B, ref="v1")
    make_old(other)
    assert find_model(REPO_ID, revision=HASH_B) == str(other)
    assert find_model(REPO_ID, revision=HASH_A) == str(main)
    assert find_model(REPO_ID, revision="v1") == str(other)
    with pytest.raises(FileNotFoundError, match="at revision v2"):
        find_model(REPO_ID, revision="v2")
    with pytest.raises(FileNotFoundError):
        find_model(REPO_ID, revision="c" * 40)


def test_default_model_from_the_cache_and_the_env_var(hub, fixtures_dir, monkeypatch):
    snap = add_snapshot(hub, fixtures_dir, HASH_A, repo_id=models.DEFAULT_MODEL_ID, ref="main")
    assert find_model() == str(snap)
    assert find_model("nvidia/LocateAnything-3B") == str(snap)
    monkeypatch.setenv("LOCATEANYTHING_MODEL", str(fixtures_dir / "tiny-a"))
    assert find_model() == str(fixtures_dir / "tiny-a")


# ---- half-finished downloads ----

def test_half_downloaded_sharded_snapshot_names_the_missing_shard(hub, fixtures_dir):
    snap = add_snapshot(hub, fixtures_dir, HASH_A, ref="main", skip=("model.safetensors",))
    (snap / "model-00001-of-00002.safetensors").symlink_to(fixtures_dir / "tiny-a" / "model.safetensors")
    # The second shard's blob never arrived: a dangling symlink, as the cache leaves it.
    (snap / "model-00002-of-00002.safetensors").symlink_to(hub / "blobs" / "never-downloaded")
    (snap / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(FileNotFoundError) as e:
        find_model(REPO_ID)
    msg = str(e.value)
    assert "incomplete" in msg and "model-00002-of-00002.safetensors" in msg
    assert "model-00001-of-00002.safetensors" not in msg
    assert "hf download org/name" in msg and "huggingface-cli download org/name" in msg


def test_half_downloaded_snapshot_without_weights_or_tokenizer(hub, fixtures_dir):
    add_snapshot(hub, fixtures_dir, HASH_A, ref="main", skip=("model.safetensors", "merges.txt"))
    with pytest.raises(FileNotFoundError, match=r"incomplete.*model\.safetensors.*merges\.txt") as e:
        find_model(REPO_ID)
    assert "vocab.json" not in str(e.value).split("missing", 1)[1].split("\n")[0]
    # A revision other than main is named in the command that finishes the download.
    add_snapshot(hub, fixtures_dir, HASH_B, ref="v1", skip=("vocab.json",))
    with pytest.raises(FileNotFoundError, match=r"vocab\.json[\s\S]*hf download org/name --revision v1"):
        find_model(REPO_ID, revision="v1")


def test_an_incomplete_snapshot_of_the_default_model_is_reported(hub, fixtures_dir):
    add_snapshot(hub, fixtures_dir, HASH_A, repo_id=models.DEFAULT_MODEL_ID, ref="main", skip=("model.safetensors",))
    with pytest.raises(FileNotFoundError, match="incomplete.*model.safetensors"):
        find_model()


def test_explicit_folder_is_checked_too(hub, fixtures_dir, tmp_path):
    folder = link_checkpoint(fixtures_dir / "tiny-a", tmp_path / "LocateAnything-3B", skip=("model.safetensors",))
    with pytest.raises(FileNotFoundError, match="incomplete.*model.safetensors") as e:
        find_model(folder)
    assert f"--local-dir {folder}" in str(e.value)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        find_model(folder)
    # A complete folder (tokenizer.json instead of vocab.json + merges.txt is complete too).
    assert find_model(fixtures_dir / "tiny-a") == str(fixtures_dir / "tiny-a")
    alt = link_checkpoint(fixtures_dir / "tiny-a", tmp_path / "alt", skip=("vocab.json", "merges.txt"))
    (alt / "tokenizer.json").write_text("{}")
    assert models.missing_files(alt) == []
    assert find_model(str(alt)) == str(alt)


# ---- without huggingface_hub, offline, and with a (fake) huggingface_hub ----

def test_without_the_hub_package_the_old_message_with_the_download_hint(hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` raises ImportError
    with pytest.raises(FileNotFoundError, match="No LocateAnything checkpoint found") as e:
        find_model("nvidia/LocateAnything-3B")
    assert "Hugging Face cache entry for nvidia/LocateAnything-3B" in str(e.value)
    assert "hf download nvidia/LocateAnything-3B --local-dir" in str(e.value)
    assert "huggingface-cli download nvidia/LocateAnything-3B" in str(e.value)  # older hub versions
    assert models.DOWNLOAD_HINT in str(e.value)


class FakeHub:
    """A stand-in `huggingface_hub` module whose snapshot_download records its calls."""

    def __init__(self, monkeypatch, result=None, error=None):
        self.calls = []
        self.result, self.error = result, error
        module = types.ModuleType("huggingface_hub")
        module.snapshot_download = self.snapshot_download
        monkeypatch.setitem(sys.modules, "huggingface_hub", module)

    def snapshot_download(self, repo_id, revision=None, **kwargs):
        self.calls.append((repo_id, revision, kwargs))
        if self.error is not None:
            raise self.error
        return str(self.result)


def test_a_repo_id_that_is_not_cached_is_downloaded_with_its_revision(hub, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    downloaded = link_checkpoint(fixtures_dir / "tiny-a", tmp_path / "downloaded")
    fake = FakeHub(monkeypatch, result=downloaded)
    assert find_model(REPO_ID, revision="v2") == str(downloaded)
    assert fake.calls == [(REPO_ID, "v2", {})]
    assert find_model("nvidia/LocateAnything-3B") == str(downloaded)
    assert fake.calls[-1] == ("nvidia/LocateAnything-3B", "main", {})


def test_offline_or_cached_means_no_download(hub, fixtures_dir, monkeypatch):
    fake = FakeHub(monkeypatch, result="/nonexistent")
    with pytest.raises(FileNotFoundError, match="No LocateAnything checkpoint found"):  # HF_HUB_OFFLINE=1
        find_model(REPO_ID)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    snap = add_snapshot(hub, fixtures_dir, HASH_A, ref="main")
    assert find_model(REPO_ID) == str(snap)  # complete in the cache: used as it is
    with pytest.raises(FileNotFoundError):
        find_model()  # None never downloads: the default model is looked up in the cache only
    assert fake.calls == []


def test_online_a_half_download_is_finished_and_failures_are_named(hub, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    add_snapshot(hub, fixtures_dir, HASH_A, ref="main", skip=("model.safetensors",))
    downloaded = link_checkpoint(fixtures_dir / "tiny-a", tmp_path / "finished")
    fake = FakeHub(monkeypatch, result=downloaded)
    assert find_model(REPO_ID) == str(downloaded)
    assert fake.calls == [(REPO_ID, "main", {})]
    # A download that itself comes back incomplete is reported, not loaded.
    fake.result = link_checkpoint(fixtures_dir / "tiny-a", tmp_path / "short", skip=("vocab.json",))
    with pytest.raises(FileNotFoundError, match="incomplete.*vocab.json"):
        find_model(REPO_ID)
    # A failing download (no network, unknown repository) is a FileNotFoundError naming the repository.
    fake.error = OSError("connection refused")
    with pytest.raises(FileNotFoundError, match=r"Could not download org/name \(revision main\).*connection refused"):
        find_model(REPO_ID)


# ---- conftest.py: missing fixtures fail the run ----

def run_fixture_policy(tmp_path, env_extra):
    """Runs pytest on a one-test file that needs fixtures_dir, with this repository's conftest.py."""
    (tmp_path / "conftest.py").write_text((pathlib.Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_needs_fixtures.py").write_text(
        "def test_it(fixtures_dir):\n    assert (fixtures_dir / 'tiny-a').is_dir()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LA_FIXTURES", "LA_ALLOW_NO_FIXTURES")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "test_needs_fixtures.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_missing_fixtures_fail_the_run(tmp_path):
    missing = tmp_path / "no-such-fixtures"
    r = run_fixture_policy(tmp_path, {"LA_FIXTURES": str(missing)})
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert str(missing) in out and "LA_FIXTURES" in out and "LA_ALLOW_NO_FIXTURES=1" in out
    assert "1 error" in out or "1 failed" in out, out


def test_missing_fixtures_skip_with_the_opt_out(tmp_path):
    missing = tmp_path / "no-such-fixtures"
    r = run_fixture_policy(tmp_path, {"LA_FIXTURES": str(missing), "LA_ALLOW_NO_FIXTURES": "1"})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "1 skipped" in out and str(missing) in out


def test_present_fixtures_run(tmp_path, fixtures_dir):
    r = run_fixture_policy(tmp_path, {"LA_FIXTURES": str(fixtures_dir)})
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
