"""The rankers on real models, a handful of users each: the embedded `hf:smollm2-135m` (loaded once per session)
and, when LLMREC_VLLM_URL is set, a vLLM server (required in CI: LLMREC_REQUIRE_VLLM=1). The same code runs
unchanged on both; answer lengths are capped so the whole file takes seconds."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.data.candidates import make_candidates
from llmrec.evaluation import evaluate
from llmrec.prompts import letters
from llmrec.rankers import RANKERS
from llmrec.scorers.llm import LLMScorer

# short answers: plumbing, not quality
OPTIONS = {
    "nir": {"step1_tokens": 12, "step2_tokens": 12, "step3_tokens": 24},
    "listwise": {"max_tokens": 24},
    "verbalizer": {"bootstrap": 2},
    "pointwise": {},
    "yesno": {},
}


@pytest.fixture(params=["hf", "vllm"])
def real_backend(request):
    return request.getfixturevalue(f"{request.param}_backend")


def run(name, backend, nir_tiny, n_users=3):
    ds, split = nir_tiny
    cands = make_candidates(ds, split, "sampled:4", "test", 0, use_cache=False).subset(np.arange(n_users))
    sc = LLMScorer(name, backend=backend, options={"history_len": 4, **OPTIONS[name]})
    sc.fit(ds, split)
    res = evaluate(sc, ds, split, cands, progress=False)
    return sc, res


def test_labels_are_single_tokens(real_backend):
    got = real_backend.score_labels(["Pick one: A, B or C. Answer:"], letters(26))[0]
    assert got.labels == letters(26) and all(np.isfinite(got.logprobs))


@pytest.mark.parametrize("name", RANKERS.names())
def test_ranker_runs_on_a_real_model(name, real_backend, nir_tiny):
    sc, res = run(name, real_backend, nir_tiny)
    rep = res.scorer_report
    assert rep["users"] == 3 and rep["requests"] >= 3 and rep["prompt_tokens"] > 0
    assert np.isfinite(res.per_user["rank"]).all()  # sampled: the target is always a candidate
    for r in sc.last_results:
        assert np.isfinite(r.scores).all()
    if RANKERS.get(name).generative:
        assert rep["completion_tokens"] > 0 and 0 <= rep["parse_rate"] <= 1
        assert all(isinstance(o, str) for r in sc.last_results for o in r.outputs)


@pytest.mark.parametrize("name", ["verbalizer", "pointwise", "listwise", "yesno"])
def test_deterministic_at_temperature_zero(name, real_backend, nir_tiny):
    a, _ = run(name, real_backend, nir_tiny, n_users=2)
    b, _ = run(name, real_backend, nir_tiny, n_users=2)
    for x, y in zip(a.last_results, b.last_results):
        assert np.allclose(x.scores, y.scores, atol=1e-4)
        assert x.outputs == y.outputs
