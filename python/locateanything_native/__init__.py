"""locateanything_native: exact, fast CPU inference for NVIDIA LocateAnything-3B.

    import locateanything_native as la
    engine = la.load("/path/to/LocateAnything-3B")        # or la.load() with LOCATEANYTHING_MODEL set
    result = engine.detect("street.jpg", ["person", "car"])
    result.boxes, result.timings

    from locateanything_native import LocateAnythingWorker  # drop-in for the official worker
"""
import os as _os


def _pick_openblas_core() -> None:
    """OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads (with `_core` below). Some
    distribution builds do not recognise recent CPUs and fall back to generic "Prescott" kernels, ~5×
    slower for the vision tower; name the AVX-512 / AVX2 kernels when the CPU has them (an explicit
    setting by the user is kept)."""
    if "OPENBLAS_CORETYPE" in _os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        _os.environ["OPENBLAS_CORETYPE"] = "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    elif {"avx2", "fma"} <= set(flags):
        _os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_pick_openblas_core()

from ._core import Result, Tokenizer, isa  # noqa: E402,F401
from .engine import Engine, load, prepare  # noqa: E402,F401
from .images import to_array  # noqa: E402,F401
from .models import DEFAULT_MODEL_ID, find_model  # noqa: E402,F401
from .worker import LocateAnythingWorker, Stats  # noqa: E402,F401

__all__ = [
    "Engine",
    "LocateAnythingWorker",
    "Result",
    "Stats",
    "Tokenizer",
    "find_model",
    "isa",
    "load",
    "prepare",
    "to_array",
]
