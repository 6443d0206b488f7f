"""locateanything_native: exact, fast CPU inference for NVIDIA LocateAnything-3B.

    import locateanything_native as la
    engine = la.load("/path/to/LocateAnything-3B")        # or la.load() with LOCATEANYTHING_MODEL set
    result = engine.detect("street.jpg", ["person", "car"])
    result.boxes, result.timings

    from locateanything_native import LocateAnythingWorker  # drop-in for the official worker
"""
from ._core import Result, Tokenizer, isa  # noqa: F401
from .engine import Engine, load  # noqa: F401
from .images import to_array  # noqa: F401
from .models import DEFAULT_MODEL_ID, find_model  # noqa: F401
from .worker import LocateAnythingWorker, Stats  # noqa: F401

__all__ = [
    "Engine",
    "LocateAnythingWorker",
    "Result",
    "Stats",
    "Tokenizer",
    "find_model",
    "isa",
    "load",
    "to_array",
]
