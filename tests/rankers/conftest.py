"""Ranker fixtures: a deterministic fake backend, the tiny fixture data sets, the embedded model (loaded once per
session), and a vLLM server backend when LLMREC_VLLM_URL is set (skipped otherwise; a failure when
LLMREC_REQUIRE_VLLM=1, as in CI)."""

from __future__ import annotations

import os

import pytest
from ranker_fakes import FakeBackend


@pytest.fixture()
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(scope="session")
def nir_tiny(fixtures):
    """(dataset, split) of the tiny NIR-format fixture (6 users, 9 titles)."""
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset("nir-ml-100k", fixtures)
    return ds, leave_one_out(ds)


@pytest.fixture(scope="session")
def hf_backend():
    from llmrec.llm.hf_local import HFBackend

    b = HFBackend("smollm2-135m", batch_size=8, num_threads=1)
    yield b
    b.close()


@pytest.fixture(scope="session")
def vllm_backend():
    from llmrec.errors import BackendError
    from llmrec.llm import make_backend

    url = os.environ.get("LLMREC_VLLM_URL", "").strip()
    if not url:
        if os.environ.get("LLMREC_REQUIRE_VLLM") == "1":
            pytest.fail("LLMREC_REQUIRE_VLLM=1 but LLMREC_VLLM_URL is not set: the vLLM server did not start")
        pytest.skip("vLLM integration: set LLMREC_VLLM_URL to a server started with `llmrec serve-llm`")
    b = make_backend(f"openai:{url.removeprefix('openai:')}", timeout_s=120, max_retries=2)
    try:
        _ = b.model
    except BackendError as e:
        pytest.fail(f"LLMREC_VLLM_URL is set but the server does not answer: {e}")
    yield b
    b.close()
