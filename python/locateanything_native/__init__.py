"""locateanything_native: exact, fast CPU inference for NVIDIA LocateAnything-3B."""
from . import _core  # noqa: F401
