"""The backend contract on real models: the embedded `hf:` backend always, the vLLM server (LLMREC_VLLM_URL)
when present — chat, completions, label log-probs, continuation log-likelihood, structured choice, context
limits — and agreement of the two on log-probabilities for the same weights."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from llm_fakes import AGREE_MAX_NATS, AGREE_MEAN_NATS

from llmrec.errors import BackendError
from llmrec.llm import GenerationParams
from llmrec.prompts import letters, list_prompts, load_prompt, render

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Which is bigger, a cat or a mouse? Answer in one word."},
]


def verbalizer_prompt(user):
    return render("rank/verbalizer", {k: user[k] for k in ("item_kind", "history", "candidates")}).messages


def test_chat_generate(backend):
    before = backend.usage.calls
    (c,) = backend.generate([CHAT], GenerationParams(max_tokens=12))
    assert isinstance(c.text, str) and c.text.strip()
    assert c.prompt_tokens == backend.count_tokens(CHAT)
    assert 1 <= c.completion_tokens <= 12 and c.latency_s > 0
    assert c.finish_reason in ("stop", "length")
    assert backend.usage.calls == before + 1


def test_completion_generate_and_stop(backend):
    a, b = backend.generate(
        ["The capital of France is", "1, 2, 3, 4,"], GenerationParams(max_tokens=10, stop=("\n",))
    )
    assert a.text and "\n" not in a.text and "\n" not in b.text
    assert a.prompt_tokens == backend.count_tokens("The capital of France is")


def test_generate_is_greedy_and_deterministic(backend):
    p = GenerationParams(max_tokens=8)
    assert backend.generate([CHAT], p)[0].text == backend.generate([CHAT], p)[0].text


def test_score_labels(backend, fixture_user):
    prompt = verbalizer_prompt(fixture_user)
    labels = letters(len(fixture_user["candidates"]))
    (s,) = backend.score_labels([prompt], labels)
    assert s.labels == labels and len(s.logprobs) == len(labels)
    assert all(math.isfinite(x) and x <= 0 for x in s.logprobs)
    assert sum(math.exp(x) for x in s.logprobs) <= 1.0 + 1e-4
    assert abs(sum(math.exp(x) for x in s.normalized()) - 1) < 1e-6
    assert s.best in labels and s.prompt_tokens == backend.count_tokens(prompt)


def test_score_labels_batched_equals_single(backend, fixture_user):
    prompts = [verbalizer_prompt(fixture_user), CHAT, "Answer A or B:"]
    batched = backend.score_labels(prompts, ["A", "B", "Yes", "No"])
    for p, b in zip(prompts, batched):
        (single,) = backend.score_labels([p], ["A", "B", "Yes", "No"])
        assert single.logprobs == pytest.approx(b.logprobs, abs=1e-3)


def test_multi_token_label_is_rejected(backend):
    with pytest.raises(BackendError, match="single"):
        backend.score_labels([CHAT], ["A", "Mad Max: Fury Road"])


def test_loglik(backend):
    conts = ["cat", "A cat.", "Mad Max: Fury Road", ""]
    res = backend.loglik(CHAT, conts)
    assert [s.text for s in res.scores] == conts
    assert res.prompt_tokens == backend.count_tokens(CHAT)
    for s in res.scores:
        assert s.logprob == pytest.approx(sum(s.token_logprobs))
        assert all(x <= 0 for x in s.token_logprobs)
    assert res.scores[-1].n_tokens == 0 and res.scores[-1].logprob == 0
    assert res.scores[2].n_tokens > res.scores[0].n_tokens
    # a single-token continuation is the same number as its label score
    (lab,) = backend.score_labels([CHAT], ["cat"])
    assert res.scores[0].n_tokens == 1 and res.scores[0].logprob == pytest.approx(lab.logprobs[0], abs=1e-3)


def test_structured_choice(backend):
    choices = ("cat", "mouse")
    (c,) = backend.generate([CHAT], GenerationParams(max_tokens=8, choices=choices))
    assert c.text in choices
    (c,) = backend.generate(
        [[{"role": "user", "content": "Is the sky blue?"}]], GenerationParams(choices=("Yes", "No"))
    )
    assert c.text in ("Yes", "No")


def test_prompt_over_context_is_cut_not_crashed(backend, fixture_user, monkeypatch):
    """A history far over the window: rendering cuts the oldest items to the budget and the model answers;
    the uncut prompt is refused with a BackendError (no crash, no hang)."""
    if backend.name.startswith("hf:"):
        monkeypatch.setattr(backend, "context_length", 512)  # keep the CPU test fast; vLLM serves 2048
    history = [f"{t} ({i})" for i in range(400) for t in fixture_user["history"][:1]] + fixture_user[
        "history"
    ]
    params = GenerationParams(max_tokens=4)
    vals = {"history": history, "candidate": "The Rock", "item_kind": "movie", "action": "watched"}
    budget = backend.context_length - params.max_tokens
    r = render("rank/pointwise", vals, count_tokens=backend.count_tokens, budget=budget)
    assert r.history_dropped > 0 and r.n_tokens <= budget
    assert fixture_user["history"][-1] in r.messages[-1]["content"]
    (c,) = backend.generate([r.messages], params)
    assert c.prompt_tokens == r.n_tokens
    (s,) = backend.score_labels([r.messages], ["Yes", "No"])
    assert all(math.isfinite(x) for x in s.logprobs)
    full = render("rank/pointwise", vals)
    with pytest.raises(BackendError, match="context length|maximum context"):
        backend.generate([full.messages], params)


# ---- hf-only exactness ---------------------------------------------------------------------------------------
def test_hf_loglik_prefix_reuse_equals_naive(hf_backend):
    """The shared-prefix KV-cache path equals scoring each full sequence from scratch."""
    b = hf_backend
    conts = ["Die Hard", "The Matrix", "Yes", "Mad Max: Fury Road", "A"]
    res = b.loglik(CHAT, conts)
    pre = b.prompt_ids(CHAT)
    for s in res.scores:
        ids = pre + b.text_ids(s.text)
        with torch.no_grad(), b._threads():
            lp = torch.log_softmax(b.model(torch.tensor([ids])).logits[0].float(), -1)  # (T, V)
        naive = [lp[len(pre) - 1 + k, ids[len(pre) + k]].item() for k in range(len(ids) - len(pre))]
        assert s.token_logprobs == pytest.approx(naive, abs=1e-4)


def test_hf_choice_is_the_most_likely(hf_backend):
    choices = ("cat", "mouse", "elephant")
    (c,) = hf_backend.generate([CHAT], GenerationParams(choices=choices))
    res = hf_backend.loglik(CHAT, list(choices))
    assert c.text == max(res.scores, key=lambda s: s.logprob).text


def test_hf_json_schema_is_a_clear_error(hf_backend):
    with pytest.raises(BackendError, match="json_schema"):
        hf_backend.generate([CHAT], GenerationParams(json_schema={"type": "object"}))


# ---- vLLM-only ---------------------------------------------------------------------------------------------
def test_vllm_labels_outside_top_k_are_exact(vllm_backend, fixture_user):
    """Labels missing from the returned top-k are computed exactly (prompt_logprobs): same numbers."""
    from llmrec.llm import make_backend

    prompt = verbalizer_prompt(fixture_user)
    labels = letters(5) + ["Yes", "No"]
    (ref,) = vllm_backend.score_labels([prompt], labels)
    narrow = make_backend(f"openai:{vllm_backend.base_url}#{vllm_backend.model}", top_logprobs=1)
    try:
        (s,) = narrow.score_labels([prompt], labels)
    finally:
        narrow.close()
    assert s.logprobs == pytest.approx(ref.logprobs, abs=0.05)


def test_vllm_json_schema(vllm_backend):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["cat", "mouse"]}},
        "required": ["answer"],
    }
    (c,) = vllm_backend.generate([CHAT], GenerationParams(max_tokens=30, json_schema=schema))
    import json

    assert json.loads(c.text)["answer"] in ("cat", "mouse")


def test_vllm_unknown_model_name(vllm_backend):
    from llmrec.llm import make_backend

    b = make_backend(f"openai:{vllm_backend.base_url}#no-such-model", max_retries=0)
    try:
        with pytest.raises(BackendError, match="not served.*served: " + vllm_backend.model):
            b.generate([CHAT], GenerationParams(max_tokens=2))
    finally:
        b.close()


def test_hf_and_vllm_agree_on_logprobs(hf_backend, vllm_backend, fixture_user):
    """Same weights, same tokens: hf (fp32) and the vLLM server (bf16) agree within the stated tolerance
    (AGREE_MEAN_NATS mean, AGREE_MAX_NATS max per token)."""
    prompts = []
    for name in list_prompts("rank/") + ["nir/step1_preferences", "p5/direct/choose-one"]:
        t = load_prompt(name)
        prompts.append(render(t, {k: fixture_user[k] for k in t.variables if k in fixture_user}).messages)
    labels = letters(5) + ["Yes", "No"]
    conts = list(fixture_user["candidates"])
    diffs = []
    for a, b in zip(hf_backend.score_labels(prompts, labels), vllm_backend.score_labels(prompts, labels)):
        diffs += [abs(x - y) for x, y in zip(a.logprobs, b.logprobs)]
        top2 = sorted(a.logprobs)[-2:]
        if top2[1] - top2[0] > 2 * AGREE_MAX_NATS:  # a clear winner must be the same on both
            assert a.best == b.best
    for p in prompts[:3]:
        ha, va = hf_backend.loglik(p, conts), vllm_backend.loglik(p, conts)
        for a, b in zip(ha.scores, va.scores):
            assert a.n_tokens == b.n_tokens  # the same tokenization on both sides
            diffs += [abs(x - y) for x, y in zip(a.token_logprobs, b.token_logprobs)]
    assert statistics.mean(diffs) <= AGREE_MEAN_NATS, f"mean |Δ| {statistics.mean(diffs):.3f} nats"
    assert max(diffs) <= AGREE_MAX_NATS, f"max |Δ| {max(diffs):.3f} nats"
