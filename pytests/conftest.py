"""Shared pytest setup: fixture locations and the module under test.

The fixtures (the official goldens, ../shared/fixtures or $LA_FIXTURES) are required: a test that needs
them FAILS when they are missing, so the suite cannot pass with the parity tests unrun. Set
LA_ALLOW_NO_FIXTURES=1 to skip those tests instead (a run without the goldens, on purpose).
"""
from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

# Packed weight caches and demo checkpoints go to a throw-away folder, not the user's cache.
os.environ.setdefault("LOCATEANYTHING_CACHE", tempfile.mkdtemp(prefix="la_pytest_cache_"))

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get("LA_FIXTURES") or REPO.parent / "shared" / "fixtures")
ALLOW_NO_FIXTURES = os.environ.get("LA_ALLOW_NO_FIXTURES", "").strip().lower() in {"1", "true", "yes", "on"}


def fixtures_problem() -> str | None:
    """Why the fixtures cannot be used (where they were looked for and how to point at them), or None."""
    source = "$LA_FIXTURES" if os.environ.get("LA_FIXTURES") else "the default, ../shared/fixtures beside the repository"
    if not FIXTURES.is_dir():
        problem = f"the test fixtures were not found at {FIXTURES} ({source})"
    elif not (FIXTURES / "tiny-a").is_dir():
        problem = f"{FIXTURES} ({source}) is not the fixtures folder: it has no tiny-a/"
    else:
        return None
    return (f"{problem}. Point LA_FIXTURES at the folder that holds tiny-a/ and images/ "
            "(LA_FIXTURES=/path/to/shared/fixtures python3 -m pytest ...), or set LA_ALLOW_NO_FIXTURES=1 "
            "to skip the tests that need them.")


def pytest_report_header(config):
    problem = fixtures_problem()
    if problem is None:
        return f"fixtures: {FIXTURES}"
    return f"fixtures: MISSING ({'skipped: LA_ALLOW_NO_FIXTURES is set' if ALLOW_NO_FIXTURES else 'tests fail'}): {problem}"


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    problem = fixtures_problem()
    if problem is not None:
        if ALLOW_NO_FIXTURES:
            pytest.skip(problem)
        pytest.fail(problem, pytrace=False)
    return FIXTURES
