"""Import shim for the official processor (see bench/reference_shims/README.md)."""
from . import io, transforms  # noqa: F401
