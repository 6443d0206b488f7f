"""Shared pytest setup: fixture locations and the module under test."""
import os
import pathlib
import tempfile

import pytest

# Packed weight caches and demo checkpoints go to a throw-away folder, not the user's cache.
os.environ.setdefault("LOCATEANYTHING_CACHE", tempfile.mkdtemp(prefix="la_pytest_cache_"))

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get("LA_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES} (set LA_FIXTURES)")
    return FIXTURES
