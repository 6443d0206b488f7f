"""A packed weight cache many processes can trust: one builder under a lock, checksums verified before
use, corrupt / truncated / half-written files rebuilt, read-only and missing folders handled."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import locateanything_native as la

# A child process: load `model` with int4 and the cache at $CACHE_FILE (or the default folder), answer
# one greedy query, print the notes and the answer as JSON.
CHILD = r"""
import json, os, sys
import numpy as np
import locateanything_native as la
cache = os.environ.get("CACHE_FILE") or True
e = la.Engine(sys.argv[1], quantization="int4", threads=1, packed_cache=cache)
img = np.full((56, 84, 3), 90, np.uint8)
r = e.detect(img, ["person"], max_new_tokens=16)
print(json.dumps({"notes": list(e.core.notes), "ids": r.generated_ids, "file": e.core.packed_cache_file}))
"""


@pytest.fixture()
def model(fixtures_dir, tmp_path):
    """A private copy of tiny-a (a fresh fingerprint, so no cache exists for it yet)."""
    src, dst = fixtures_dir / "tiny-a", tmp_path / "model"
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns("cases", "vision", "*.npz"))
    for f in dst.iterdir():  # pointer files ("../tokenizer/vocab.json") → the files they name
        text = f.read_bytes()[:200]
        if len(text) < 200 and text.startswith(b"../") and (src / text.decode().strip()).is_file():
            shutil.copyfile(src / text.decode().strip(), f)
    return dst


def _child(model, env_extra=None, wait=True):
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(model)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return _result(p) if wait else p


def _result(p):
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _wrote(res):
    return any(n.startswith("wrote the packed weight cache") for n in res["notes"])


def _reference(model, tmp_path):
    return _child(model, {"CACHE_FILE": str(tmp_path / "reference.safetensors")})


def test_processes_starting_together_build_once(model, tmp_path):
    cache = tmp_path / "cache" / "packed.safetensors"
    cache.parent.mkdir()
    # Hold the build lock while three processes start, so all three find no cache and queue on it.
    with open(str(cache) + ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [_child(model, {"CACHE_FILE": str(cache)}, wait=False) for _ in range(3)]
        time.sleep(3)
        assert all(p.poll() is None for p in procs)  # waiting, not building
    results = [_result(p) for p in procs]
    assert sum(_wrote(r) for r in results) == 1
    assert sum(any(n.startswith("loaded packed weights") for n in r["notes"]) for r in results) == 2
    assert len({tuple(r["ids"]) for r in results}) == 1
    assert not list(cache.parent.glob("*.tmp*"))


def test_a_lock_left_by_a_killed_process_does_not_block(model, tmp_path):
    cache = tmp_path / "packed.safetensors"
    # A process that takes the lock and dies by SIGKILL (the kernel releases an flock with its holder),
    # leaving the lock file and a half-written temporary file behind.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(cache) + '.lock'!r}, 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        f"open({str(cache) + '.tmp999999'!r}, 'wb').write(b'half')\n"
        "print('locked', flush=True); time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    t0 = time.time()
    res = _child(model, {"CACHE_FILE": str(cache)})
    assert _wrote(res) and time.time() - t0 < 60
    assert not (tmp_path / "packed.safetensors.tmp999999").exists()  # the leftover was cleared


def test_lock_timeout_quantises_in_memory(model, tmp_path):
    cache = tmp_path / "packed.safetensors"
    with open(str(cache) + ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = _child(model, {"CACHE_FILE": str(cache), "LOCATEANYTHING_CACHE_LOCK_TIMEOUT": "0.5"})
    assert any("gave up waiting" in n for n in res["notes"]) and not _wrote(res)
    assert not cache.exists()
    assert res["ids"] == _reference(model, tmp_path)["ids"]


def _tensor_region(path):
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return 8 + n, len(raw)


@pytest.mark.parametrize("damage", ["flip", "zero", "truncate", "garbage_header", "empty"])
def test_a_damaged_cache_is_rebuilt_never_used(model, tmp_path, damage):
    cache = tmp_path / "packed.safetensors"
    good = _child(model, {"CACHE_FILE": str(cache)})
    assert _wrote(good)
    start, end = _tensor_region(cache)
    raw = bytearray(cache.read_bytes())
    if damage == "flip":
        for i in range(start + 100, end, max(1, (end - start) // 50)):
            raw[i] ^= 0x5A
    elif damage == "zero":
        raw[start:start + (end - start) // 2] = bytes((end - start) // 2)
    elif damage == "truncate":
        raw = raw[: start + (end - start) // 3]
    elif damage == "garbage_header":
        raw[8:40] = b"x" * 32
    else:
        raw = bytearray()
    cache.write_bytes(bytes(raw))
    again = _child(model, {"CACHE_FILE": str(cache)})
    assert _wrote(again), again["notes"]
    if damage in ("flip", "zero"):  # right size, wrong bytes: only the checksums can tell
        assert any("corrupt" in n and "checksum" in n for n in again["notes"]), again["notes"]
    assert again["ids"] == good["ids"]
    third = _child(model, {"CACHE_FILE": str(cache)})
    assert not _wrote(third) and third["ids"] == good["ids"]


def test_corruption_that_keeps_size_and_mtime_is_caught_on_request(model, tmp_path):
    cache = tmp_path / "packed.safetensors"
    good = _child(model, {"CACHE_FILE": str(cache)})
    st = os.stat(cache)
    start, end = _tensor_region(cache)
    with open(cache, "r+b") as f:
        f.seek(start + (end - start) // 2)
        b = f.read(1)
        f.seek(start + (end - start) // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(cache, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = _child(model, {"CACHE_FILE": str(cache), "LOCATEANYTHING_VERIFY_CACHE": "always"})
    assert _wrote(res) and res["ids"] == good["ids"]


def test_checksum_verification_is_recorded_once(model, tmp_path):
    cache = tmp_path / "packed.safetensors"
    _child(model, {"CACHE_FILE": str(cache)})
    side = tmp_path / "packed.safetensors.verified"
    assert side.is_file()
    st = os.stat(cache)
    assert side.read_text().split() == [str(st.st_size), str(st.st_mtime_ns), str(st.st_ino)]


def test_missing_or_unwritable_home_does_not_fail_the_load(model, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    base = {"CACHE_FILE": "", "XDG_CACHE_HOME": ""}
    # No LOCATEANYTHING_CACHE, HOME under a file: no cache, a warning, an answer.
    res = _child(model, {**base, "HOME": str(blocker / "home"), "LOCATEANYTHING_CACHE": ""})
    assert res["file"] == "" and any("no writable folder" in n for n in res["notes"])
    # HOME unset: the same.
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "LOCATEANYTHING_CACHE", "XDG_CACHE_HOME")}
    p = subprocess.run([sys.executable, "-c", CHILD, str(model)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "no writable folder" in p.stderr  # the warning reaches the user through logging
    # LOCATEANYTHING_CACHE unusable, HOME usable: the cache goes under HOME.
    res = _child(model, {**base, "HOME": str(tmp_path / "home"), "LOCATEANYTHING_CACHE": str(blocker / "c")})
    assert res["file"].startswith(str(tmp_path / "home")) and _wrote(res)


@pytest.fixture()
def read_only(tmp_path):
    """(folder, make_read_only): a folder this process cannot write to once made read-only, even as
    root (a tmpfs remounted read-only); skipped where no such folder can be made."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        yield ro, lambda: ro.chmod(0o555)
        ro.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot make a read-only folder here (root without mount permission)")
    try:
        yield ro, lambda: subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_read_only_cache_folder(model, read_only):
    ro, make_ro = read_only
    cache = ro / "packed.safetensors"
    good = _child(model, {"CACHE_FILE": str(cache)})
    make_ro()
    # A valid cache in a read-only folder is used (verified each time: no sidecar can be written).
    res = _child(model, {"CACHE_FILE": str(cache)})
    assert not _wrote(res) and res["ids"] == good["ids"]
    # A missing cache in a read-only folder: quantised in memory, said so.
    other = _child(model, {"CACHE_FILE": str(ro / "other.safetensors")})
    assert any("not writable" in n for n in other["notes"]) and other["ids"] == good["ids"]


def test_corrupt_cache_in_a_read_only_folder_is_refused(model, read_only):
    ro, make_ro = read_only
    cache = ro / "packed.safetensors"
    _child(model, {"CACHE_FILE": str(cache)})
    start, end = _tensor_region(cache)
    raw = bytearray(cache.read_bytes())
    raw[start + 10] ^= 0x01
    cache.write_bytes(bytes(raw))
    (ro / "packed.safetensors.verified").unlink()
    make_ro()
    with pytest.raises(RuntimeError, match="corrupt.*read-only"):
        la.Engine(str(model), quantization="int4", threads=1, packed_cache=str(cache))


def test_prepare_builds_the_cache_once(model, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCATEANYTHING_CACHE", str(tmp_path / "c"))
    path = la.prepare(str(model), quantization="int4")
    assert os.path.isfile(path) and path.startswith(str(tmp_path / "c"))
    mtime = os.stat(path).st_mtime_ns
    assert la.prepare(str(model), quantization="int4") == path and os.stat(path).st_mtime_ns == mtime
    e = la.Engine(str(model), quantization="int4", threads=1)
    assert any(n.startswith("loaded packed weights") for n in e.core.notes)
    with pytest.raises(ValueError, match="quantization"):
        la.prepare(str(model), quantization="none")


def test_a_cache_write_that_fails_midway_loads_in_memory_and_leaves_nothing(model, tmp_path):
    """Tensors go to the cache file as they are quantised; when the disk refuses one (here a file
    size limit, as a full disk would), the load goes on in private memory with a note, the
    temporary file is removed, and the answers equal those of a load that wrote the cache."""
    cache = tmp_path / "packed.safetensors"
    reference = _reference(model, tmp_path)
    limited = ("import resource, signal\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))\n")
    env = dict(os.environ, CACHE_FILE=str(cache))
    p = subprocess.run([sys.executable, "-c", limited + CHILD, str(model)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert any(n.startswith("could not write the packed weight cache") for n in res["notes"]), res["notes"]
    assert not _wrote(res)
    assert not cache.exists() and not list(tmp_path.glob("packed.safetensors.tmp*"))
    assert res["ids"] == reference["ids"]
    again = _child(model, {"CACHE_FILE": str(cache)})  # no limit: the cache is built
    assert _wrote(again) and again["ids"] == reference["ids"]
