"""Finding a checkpoint: an explicit path, $LOCATEANYTHING_MODEL, or the Hugging Face cache."""
from __future__ import annotations

import os
import pathlib

DEFAULT_MODEL_ID = "nvidia/LocateAnything-3B"
ENV_VAR = "LOCATEANYTHING_MODEL"
DOWNLOAD_HINT = (
    "Download the checkpoint with\n"
    "    pip install -U huggingface_hub && huggingface-cli download nvidia/LocateAnything-3B\n"
    "then pass its folder with --model / model_path=..., or set LOCATEANYTHING_MODEL=/path/to/LocateAnything-3B."
)


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


def _from_hf_cache(model_id: str) -> pathlib.Path | None:
    """The snapshot folder of `model_id` in the Hugging Face cache (refs/main first, else the newest)."""
    repo_dir_name = "models--" + model_id.replace("/", "--")
    for cache in _hf_cache_dirs():
        repo = cache / repo_dir_name
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            snap = snapshots / ref.read_text().strip()
            if (snap / "config.json").is_file():
                return snap
        candidates = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
        if candidates:
            return max(candidates, key=lambda p: p.stat().st_mtime)
    return None


def find_model(model: str | os.PathLike | None = None) -> str:
    """Resolves a checkpoint folder.

    `model` may be a folder, a Hugging Face id such as "nvidia/LocateAnything-3B" (looked up in the local
    Hugging Face cache; nothing is downloaded) or None (then $LOCATEANYTHING_MODEL, then the cache).
    Raises FileNotFoundError with the download command when nothing is found.
    """
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
            return str(path)
        if path.exists():
            raise FileNotFoundError(f"'{path}' is a file; pass the checkpoint folder that holds config.json.")
        model_id = str(model)
        if model_id.count("/") == 1 and not model_id.startswith((".", "/", "~")):
            snap = _from_hf_cache(model_id)
            if snap is not None:
                return str(snap)
            tried.append(f"Hugging Face cache entry for {model_id}")
        else:
            tried.append(str(path))
    else:
        snap = _from_hf_cache(DEFAULT_MODEL_ID)
        if snap is not None:
            return str(snap)
        tried.append(f"Hugging Face cache entry for {DEFAULT_MODEL_ID}")
    raise FileNotFoundError("No LocateAnything checkpoint found (tried: " + "; ".join(tried) + ").\n" + DOWNLOAD_HINT)
