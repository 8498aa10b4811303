"""Shared test fixtures: tiny raw data in every supported format (tests/fixtures) and the real data sets in
../shared/data when present (every dev machine and CI run has them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("LLMREC_DATA_DIR", SHARED_DATA))
    if not (root / "ml-100k" / "u.data").is_file():
        pytest.skip("the real data sets (../shared/data) are not on this machine")
    return root


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty llmrec cache folder for this test (candidate files, downloads)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny():
    """(dataset, split) of the tiny MovieLens-format fixture."""
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset("ml-100k", FIXTURES)
    return ds, leave_one_out(ds)
