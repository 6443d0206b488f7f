"""Finding a checkpoint: an explicit path, $LOCATEANYTHING_MODEL, the Hugging Face cache, or a download.

A Hugging Face id such as "nvidia/LocateAnything-3B" is resolved the way `huggingface_hub` resolves it:
the cached snapshot named by `refs/<revision>` (or the snapshot folder of a commit hash), else, when the
optional `huggingface_hub` package is installed and HF_HUB_OFFLINE is not set,
`huggingface_hub.snapshot_download(repo_id, revision=...)` (as the official worker's `from_pretrained`).
A checkpoint folder whose weights or tokenizer files are missing (a half-finished download) is reported
with the missing files and the command that finishes the download, never loaded.
"""
from __future__ import annotations

import json
import os
import pathlib
import re

DEFAULT_MODEL_ID = "nvidia/LocateAnything-3B"
DEFAULT_REVISION = "main"
ENV_VAR = "LOCATEANYTHING_MODEL"
DOWNLOAD_HINT = (
    "Download the checkpoint with\n"
    "    pip install -U huggingface_hub && hf download nvidia/LocateAnything-3B --local-dir ~/models/LocateAnything-3B\n"
    "(older huggingface_hub: huggingface-cli download nvidia/LocateAnything-3B --local-dir ~/models/LocateAnything-3B)\n"
    "then pass its folder with --model / model_path=..., or set LOCATEANYTHING_MODEL=/path/to/LocateAnything-3B."
)

# A full commit hash names its snapshot folder directly (as in huggingface_hub).
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "ON", "YES", "TRUE"}


def _hf_cache_dirs() -> list[pathlib.Path]:
    dirs = []
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            dirs.append(pathlib.Path(os.environ[var]))
    if os.environ.get("HF_HOME"):
        dirs.append(pathlib.Path(os.environ["HF_HOME"]) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    dirs.append((pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "huggingface" / "hub")
    return dirs


def _hub_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network (the values huggingface_hub accepts)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def missing_files(folder: str | os.PathLike) -> list[str]:
    """The files a LocateAnything checkpoint folder needs but lacks: config.json, the weights
    (every shard listed in model.safetensors.index.json, else at least one *.safetensors) and the
    tokenizer (tokenizer.json, or vocab.json and merges.txt). Empty for a complete folder. A file is
    present when it opens: a dangling symlink (a cache entry whose blob never arrived) is missing."""
    folder = pathlib.Path(folder)
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
            shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        except (OSError, ValueError, AttributeError, TypeError):
            shards = []  # a malformed index is the core's to report, with its own message
        missing += [s for s in shards if isinstance(s, str) and not (folder / s).is_file()]
    elif not any(p.is_file() for p in folder.glob("*.safetensors")):
        missing.append("model.safetensors (no *.safetensors weights)")
    if not (folder / "tokenizer.json").is_file():
        missing += [name for name in ("vocab.json", "merges.txt") if not (folder / name).is_file()]
    return missing


def _download_command(model_id: str, revision: str, local_dir: pathlib.Path | None = None) -> str:
    args = model_id
    if revision != DEFAULT_REVISION:
        args += f" --revision {revision}"
    if local_dir is not None:
        args += f" --local-dir {local_dir}"
    return f"    hf download {args}\n(older huggingface_hub: huggingface-cli download {args})"


def _incomplete(folder: pathlib.Path, model_id: str, revision: str, local_dir: bool) -> str:
    """The message for a checkpoint folder that lacks files, with the command that finishes the download
    (into that folder for a --local-dir download, else into the Hugging Face cache)."""
    missing = missing_files(folder)
    return (
        f"The checkpoint in '{folder}' is incomplete (a download that did not finish?): missing "
        + ", ".join(missing)
        + ".\nFinish the download with\n"
        + _download_command(model_id, revision, folder if local_dir else None)
    )


def _check_complete(folder: pathlib.Path, model_id: str, revision: str, local_dir: bool) -> None:
    if missing_files(folder):
        raise FileNotFoundError(_incomplete(folder, model_id, revision, local_dir))


def _cached_snapshot(model_id: str, revision: str) -> tuple[pathlib.Path | None, pathlib.Path | None]:
    """(complete, incomplete): the snapshot folder of `model_id` at `revision` in a Hugging Face cache,
    resolved as huggingface_hub does (a commit hash names its folder; otherwise refs/<revision> holds the
    commit hash). `complete` is the first complete one; `incomplete` the first that exists but lacks
    files. Nothing else is guessed: another, newer snapshot folder is not this revision."""
    repo_dir_name = "models--" + model_id.replace("/", "--")
    incomplete = None
    for cache in _hf_cache_dirs():
        repo = cache / repo_dir_name
        if _COMMIT_HASH.match(revision):
            commit = revision
        else:
            ref = repo / "refs" / revision
            if not ref.is_file():
                continue
            commit = ref.read_text().strip()
        snap = repo / "snapshots" / commit
        if not snap.is_dir():
            continue
        if not missing_files(snap):
            return snap, None
        incomplete = incomplete or snap
    return None, incomplete


def _hub_downloader():
    """`huggingface_hub.snapshot_download`, or None when the package is absent or HF_HUB_OFFLINE is set."""
    if _hub_offline():
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    return snapshot_download


def _from_hub(model_id: str, revision: str, tried: list[str]) -> str | None:
    """A complete snapshot of `model_id`: cached, else downloaded (which also finishes a half-done
    download). None when it is not cached and cannot be downloaded here; FileNotFoundError for an
    incomplete snapshot that cannot be finished here or a download that fails."""
    snap, incomplete = _cached_snapshot(model_id, revision)
    if snap is not None:
        return str(snap)
    snapshot_download = _hub_downloader()
    if snapshot_download is not None:
        try:
            folder = pathlib.Path(snapshot_download(model_id, revision=revision))
        except (OSError, ValueError) as exc:  # network, authentication, unknown repository or revision
            raise FileNotFoundError(
                f"Could not download {model_id} (revision {revision}) from the Hugging Face Hub: {exc}\n"
                + (_incomplete(incomplete, model_id, revision, False) if incomplete
                   else DOWNLOAD_HINT)
            ) from exc
        _check_complete(folder, model_id, revision, local_dir=False)
        return str(folder)
    if incomplete is not None:
        raise FileNotFoundError(_incomplete(incomplete, model_id, revision, False))
    at = f" at revision {revision}" if revision != DEFAULT_REVISION else ""
    tried.append(f"Hugging Face cache entry for {model_id}{at}")
    return None


def find_model(model: str | os.PathLike | None = None, revision: str | None = None) -> str:
    """Resolves a checkpoint folder.

    `model` may be a folder, a Hugging Face id such as "nvidia/LocateAnything-3B" or None (then
    $LOCATEANYTHING_MODEL, then the cached nvidia/LocateAnything-3B; nothing is downloaded for None).
    An id is looked up in the local Hugging Face cache at `revision` (a branch, tag or commit hash;
    default "main"); if it is not there and `huggingface_hub` is installed and HF_HUB_OFFLINE is not
    set, it is downloaded with `huggingface_hub.snapshot_download` (with its progress bar).
    Raises FileNotFoundError with the download command when nothing is found, and with the missing
    files when a checkpoint folder is incomplete.
    """
    revision = revision or DEFAULT_REVISION
    tried = []
    if model is None and os.environ.get(ENV_VAR):
        model = os.environ[ENV_VAR]
        tried.append(f"${ENV_VAR}={model}")
    if model is not None:
        path = pathlib.Path(model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(
                    f"'{path}' has no config.json: it is not a LocateAnything checkpoint folder.\n{DOWNLOAD_HINT}"
                )
            _check_complete(path, DEFAULT_MODEL_ID, DEFAULT_REVISION, local_dir=True)
            return str(path)
        if path.exists():
            raise FileNotFoundError(f"'{path}' is a file; pass the checkpoint folder that holds config.json.")
        model_id = str(model)
        if model_id.count("/") == 1 and not model_id.startswith((".", "/", "~")):
            found = _from_hub(model_id, revision, tried)
            if found is not None:
                return found
        else:
            tried.append(str(path))
    else:
        snap, incomplete = _cached_snapshot(DEFAULT_MODEL_ID, revision)
        if snap is not None:
            return str(snap)
        if incomplete is not None:
            raise FileNotFoundError(_incomplete(incomplete, DEFAULT_MODEL_ID, revision, False))
        tried.append(f"Hugging Face cache entry for {DEFAULT_MODEL_ID}")
    raise FileNotFoundError("No LocateAnything checkpoint found (tried: " + "; ".join(tried) + ").\n" + DOWNLOAD_HINT)
