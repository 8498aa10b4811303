"""The tuned adapter on the real vLLM CPU server: a tiny adapter of the embedded model, trained here, served with
`--lora` (what `llmrec serve-llm --lora` runs), gives the label log-probabilities hf+adapter gives, within the
stated hf-vs-vLLM tolerance for adapters (llm_fakes.AGREE_LORA_*), and they differ from the base model's by far
more than that tolerance.

Runs where the vLLM integration tests run (LLMREC_VLLM_URL set, as in CI; LLMREC_REQUIRE_VLLM=1 makes a missing
server a failure); it starts its own server, because the shared one is started without adapters."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))
from llm_fakes import AGREE_LORA_MAX_NATS, AGREE_LORA_MEAN_NATS  # noqa: E402

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def served_adapter(tmp_path_factory):
    if not os.environ.get("LLMREC_VLLM_URL", "").strip():
        if os.environ.get("LLMREC_REQUIRE_VLLM") == "1":
            pytest.fail("LLMREC_REQUIRE_VLLM=1 but LLMREC_VLLM_URL is not set: the vLLM server did not start")
        pytest.skip("vLLM integration: set LLMREC_VLLM_URL (CI starts a vLLM CPU server)")
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.llm.serve import ServerConfig, start_server
    from llmrec.tune_llm import LLMTuneConfig, tune_llm

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    ds = load_dataset("ml-100k", fixtures)
    split = leave_one_out(ds)
    root = tmp_path_factory.mktemp("lora")
    adapter = root / "tiny-direct"
    cfg = LLMTuneConfig(tasks=["direct", "yesno"], negatives="uniform", candidates=4, history_len=3,
                        per_user={"direct": 2, "yesno": 2}, valid_users=2, max_examples=12, epochs=1,
                        batch_size=4, lr=2e-2, r=8, alpha=16, threads=1)
    tune_llm(ds, split, cfg, adapter, root / "work", progress=False)
    log = root / "vllm-lora.log"
    server = start_server(ServerConfig(loras=(str(adapter),)), log_path=log, timeout_s=400)
    yield adapter, server
    server.stop()


def _prompts():
    from llmrec.prompts import render

    hist = ["Heat (1995)", "Alien (1979)", "Fargo (1996)"]
    cands = ["Toy Story (1995)", "Brazil (1985)", "Clerks (1994)", "Amélie (2001)"]
    out = [render("rank/verbalizer", {"item_kind": "movie", "history": hist, "candidates": cands}).messages,
           render("p5/direct/pick-letter", {"item_kind": "movie", "history": hist, "candidates": cands}).messages]
    out += [render("rank/pointwise", {"item_kind": "movie", "action": "watched", "history": hist,
                                      "candidate": c}).messages for c in cands[:2]]
    return out


def test_vllm_serves_the_adapter_as_hf_computes_it_and_the_adapter_matters(served_adapter):
    from llmrec.llm import make_backend
    from llmrec.llm.hf_local import HFBackend
    from llmrec.prompts import letters

    adapter, server = served_adapter
    assert server.adapters == (adapter.name,)
    labels = letters(4) + ["Yes", "No"]
    prompts = _prompts()
    hf_base = HFBackend("smollm2-135m", num_threads=1)
    hf_tuned = HFBackend(f"smollm2-135m+{adapter}", num_threads=1)
    vllm_tuned = make_backend(f"openai:{server.base_url}#{adapter.name}", timeout_s=120)
    vllm_base = make_backend(f"openai:{server.spec.removeprefix('openai:')}", timeout_s=120)
    try:
        got = {name: [s.logprobs for s in b.score_labels(prompts, labels)]
               for name, b in (("hf_base", hf_base), ("hf_tuned", hf_tuned), ("vllm_tuned", vllm_tuned),
                               ("vllm_base", vllm_base))}
    finally:
        vllm_tuned.close()
        vllm_base.close()

    def diffs(a: str, b: str) -> list[float]:
        return [abs(x - y) for ra, rb in zip(got[a], got[b]) for x, y in zip(ra, rb)]

    agree = diffs("hf_tuned", "vllm_tuned")
    mean = statistics.mean(agree)
    assert mean <= AGREE_LORA_MEAN_NATS, f"hf+adapter vs vLLM+adapter: mean |Δ| {mean:.3f}"
    assert max(agree) <= AGREE_LORA_MAX_NATS, f"hf+adapter vs vLLM+adapter: max |Δ| {max(agree):.3f}"
    moved = diffs("hf_tuned", "hf_base")
    assert statistics.mean(moved) > 4 * AGREE_LORA_MEAN_NATS, f"the adapter moved them by {statistics.mean(moved):.3f}"
    assert max(moved) > 2 * AGREE_LORA_MAX_NATS
    served = statistics.mean(diffs("vllm_tuned", "vllm_base"))
    assert served > 4 * AGREE_LORA_MEAN_NATS, f"the server applied an adapter that moved them by only {served:.3f}"
