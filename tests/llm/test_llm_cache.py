"""The SQLite response cache: a rerun makes no new calls, an interrupted run resumes, keys separate what must
differ, and concurrent writers (threads and processes) are safe."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
from collections.abc import Sequence

import pytest

from llmrec.llm import GenerationParams, make_backend
from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    LabelScores,
    LoglikResult,
    OnResult,
    Prompt,
    Usage,
    prompt_to_json,
)
from llmrec.llm.cache import CachedBackend, ResponseCache, request_key


class CountingBackend:
    """A deterministic fake LLM that counts what it is asked and can fail after N answers."""

    name = "fake:echo"
    cache_id = "fake:echo"
    context_length = 100

    def __init__(self, fail_after: int | None = None) -> None:
        self.usage = Usage()
        self.asked: list[str] = []
        self.fail_after = fail_after

    def _answer(self, p: Prompt) -> str:
        if self.fail_after is not None and len(self.asked) >= self.fail_after:
            raise KeyboardInterrupt  # an interrupted run
        key = str(prompt_to_json(p))
        self.asked.append(key)
        return key[::-1]

    def generate(self, prompts: Sequence[Prompt], params=None, on_result: OnResult | None = None):
        out = []
        for i, p in enumerate(prompts):
            c = Completion(text=self._answer(p), prompt_tokens=3, completion_tokens=2, latency_s=0.1)
            self.usage.record("generate", prompt_tokens=3, completion_tokens=2, latency_s=0.1)
            out.append(c)
            if on_result:
                on_result(i, c)
        return out

    def score_labels(self, prompts, labels, on_result=None):
        out = []
        for i, p in enumerate(prompts):
            self._answer(p)
            s = LabelScores(
                labels=list(labels),
                logprobs=[-1.0 * (j + 1) for j in range(len(labels))],
                prompt_tokens=3,
                latency_s=0.1,
            )
            self.usage.record("score_labels", prompt_tokens=3)
            out.append(s)
            if on_result:
                on_result(i, s)
        return out

    def loglik(self, prefix, continuations):
        self._answer(prefix)
        return LoglikResult(
            scores=[
                ContinuationScore(text=c, logprob=-float(len(c)), token_logprobs=[-1.0] * len(c))
                for c in continuations
            ],
            prompt_tokens=4,
            latency_s=0.1,
        )

    def count_tokens(self, p):
        return 3

    def close(self):
        pass


PROMPTS = [[{"role": "user", "content": f"q{i}"}] for i in range(10)]


def test_rerun_makes_no_new_calls(tmp_path):
    path = tmp_path / "c.sqlite"
    inner = CountingBackend()
    b = CachedBackend(inner, ResponseCache(path))
    first = b.generate(PROMPTS)
    assert len(inner.asked) == 10 and not any(c.cached for c in first)
    b.close()

    inner2 = CountingBackend()
    b2 = CachedBackend(inner2, ResponseCache(path))  # a new process would see the same file
    second = b2.generate(PROMPTS)
    assert inner2.asked == []
    assert [c.text for c in second] == [c.text for c in first] and all(c.cached for c in second)
    assert all(c.latency_s == 0 and c.cost_usd == 0 for c in second)
    assert b2.usage.calls == 0 and b2.usage.cached_calls == 10
    # label scores and log-likelihoods are cached too
    s1 = b2.score_labels(PROMPTS[:3], ["A", "B"])
    l1 = b2.loglik(PROMPTS[0], ["x", "yy"])
    assert len(inner2.asked) == 4
    s2 = b2.score_labels(PROMPTS[:3], ["A", "B"])
    l2 = b2.loglik(PROMPTS[0], ["x", "yy"])
    assert len(inner2.asked) == 4
    assert [s.logprobs for s in s2] == [s.logprobs for s in s1] and l2.scores == l1.scores and l2.cached
    b2.close()


def test_interrupted_run_resumes(tmp_path):
    path = tmp_path / "c.sqlite"
    b = CachedBackend(CountingBackend(fail_after=6), ResponseCache(path))
    with pytest.raises(KeyboardInterrupt):
        b.generate(PROMPTS)
    b.close()
    assert len(ResponseCache(path)) == 6  # each answer was stored as it arrived

    inner = CountingBackend()
    b = CachedBackend(inner, ResponseCache(path))
    seen = {}
    out = b.generate(PROMPTS, on_result=lambda i, c: seen.__setitem__(i, c.text))
    assert len(inner.asked) == 4  # only the unanswered ones
    assert sorted(seen) == list(range(10)) and [seen[i] for i in range(10)] == [c.text for c in out]
    b.close()


def test_keys_separate_what_must_differ():
    p = [{"role": "user", "content": "x"}]
    base = {"prompt": prompt_to_json(p), "params": GenerationParams().to_dict()}
    k0, _ = request_key("generate", "hf:m", base)
    assert request_key("generate", "hf:m", dict(base))[0] == k0
    assert request_key("generate", "hf:other", base)[0] != k0
    assert request_key("score_labels", "hf:m", base)[0] != k0
    assert (
        request_key("generate", "hf:m", {**base, "params": GenerationParams(max_tokens=5).to_dict()})[0] != k0
    )
    assert request_key("generate", "hf:m", {**base, "prompt": "x"})[0] != k0  # chat vs raw text
    # greedy ignores the seed, so it does not split the cache; sampling does
    assert GenerationParams(seed=1).to_dict() == GenerationParams(seed=2).to_dict()
    assert (
        GenerationParams(temperature=1, seed=1).to_dict() != GenerationParams(temperature=1, seed=2).to_dict()
    )


def test_wal_mode_and_thread_safety(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"

    def work(t: int) -> None:
        for i in range(50):
            cache.put(f"k{t}-{i}", "generate", "b", "{}", {"text": f"{t}-{i}"})
            assert cache.get(f"k{t}-{i}") == {"text": f"{t}-{i}"}

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 400
    cache.close()


def _writer(path: str, w: int) -> None:
    c = ResponseCache(path)
    for i in range(100):
        c.put(f"shared-{i}", "generate", "b", "{}", {"text": str(i)})  # the same keys from every process
        c.put(f"own-{w}-{i}", "generate", "b", "{}", {"text": str(i)})
    c.close()


def test_process_safety(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ResponseCache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(ResponseCache(path)) == 100 + 400


def test_make_backend_with_cache_on_hf(hf_backend, tmp_path, monkeypatch):
    """End to end on the real embedded model: the second pass is answered from disk, identically."""
    b = CachedBackend(hf_backend, ResponseCache(tmp_path / "hf.sqlite"))
    calls0 = hf_backend.usage.calls
    params = GenerationParams(max_tokens=6)
    a = b.generate(PROMPTS[:3], params)
    assert hf_backend.usage.calls == calls0 + 3
    again = b.generate(PROMPTS[:3], params)
    assert hf_backend.usage.calls == calls0 + 3
    assert [c.text for c in again] == [c.text for c in a]
    assert b.usage.cached_calls == 3


def test_make_backend_cache_argument(tmp_path, monkeypatch, fake_server):
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path))
    b = make_backend(f"openai:{fake_server.url}#fake-model", cache=True)
    assert isinstance(b, CachedBackend) and b.cache.path == tmp_path / "llm-responses.sqlite"
    b.close()
