"""Fixtures shared by the whole suite.

- ``shared_benchmarks``: ``../shared/benchmarks`` beside the repository (Set5/Set14 with
  MATLAB-made LR files). A user's clone has no ``../shared``: tests using it skip, never fail.
- ``sample_root``: the embedded sample dataset (scikit-image photos, no download), built once
  per test session in a temporary folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = Path(os.environ.get("COURSE_SR_SHARED", REPO.parent / "shared")) / "benchmarks"


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    if not (SHARED_BENCHMARKS / "Set5" / "HR").is_dir():
        pytest.skip(f"{SHARED_BENCHMARKS} is absent (only the course's dev checkout has ../shared)")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    from course_sr.sample import ensure_sample

    return ensure_sample(tmp_path_factory.mktemp("sample"))
