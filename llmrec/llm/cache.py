"""On-disk LLM response cache (SQLite) and the backend wrapper that uses it.

A response is keyed by sha256 over (kind, backend kind + model, the prompt as sent — rendered messages or text —,
labels / continuations, generation params). Rerunning an evaluation therefore makes no new calls, and because
every result is written as soon as it arrives (`on_result`), an interrupted run resumes where it stopped.

SQLite in WAL mode with a busy timeout: several threads and processes may read and write the same file; a write
is one short transaction (INSERT OR REPLACE), so concurrent writers of the same key simply agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmrec.errors import CacheError
from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    GenerationParams,
    LabelScores,
    LLMBackend,
    LoglikResult,
    OnResult,
    Prompt,
    Usage,
    prompt_to_json,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key      TEXT PRIMARY KEY,   -- sha256 of the request below
    kind     TEXT NOT NULL,      -- generate | score_labels | loglik
    backend  TEXT NOT NULL,      -- backend kind and model (LLMBackend.cache_id)
    request  TEXT NOT NULL,      -- canonical JSON of the request (for inspection)
    response TEXT NOT NULL,      -- JSON of the result dataclass
    created  REAL NOT NULL
)
"""


_OTHER_CACHE = (
    "check its permissions and free disk space, or use another cache file (the llm scorer: --set "
    "options.cache=PATH, or options.cache=false for none)"
)


def request_key(kind: str, backend: str, request: dict[str, Any]) -> tuple[str, str]:
    """(key, canonical request JSON)."""
    body = json.dumps({"kind": kind, "backend": backend, **request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest(), body


class ResponseCache:
    """A SQLite file of responses. Thread-safe (one connection behind a lock); process-safe through WAL.

    A file that is not a SQLite database (or a damaged one) raises `CacheError` naming it and saying to delete
    it: it may hold paid-for answers, so it is never deleted here. A file that cannot be created or written
    (permissions, a folder in the way, a full disk) raises `CacheError` when opened, before any model call.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"{self.path}: cannot create the LLM response cache's folder ({e.strerror or e}); "
                f"{_OTHER_CACHE}"
            ) from None
        try:
            self._conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise self._error(e, "open") from None
        try:
            self._conn.execute("PRAGMA busy_timeout = 60000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
            self._conn.execute(_SCHEMA)
            # probe for write access now (a write, rolled back: a read-only WAL file passes BEGIN IMMEDIATE), so a
            # read-only cache fails before the first model call rather than after it
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM responses WHERE key = ''")
            finally:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            self._conn.close()
            raise self._error(e, "open") from None

    def _error(self, e: Exception, doing: str) -> CacheError:
        """A one-line `CacheError` for a SQLite (or decoding) failure: corrupted → delete it; else → access."""
        msg = str(e).strip() or type(e).__name__
        if isinstance(e, (ValueError, TypeError, KeyError)) or (
            isinstance(e, sqlite3.DatabaseError) and any(w in msg for w in ("not a database", "malformed", "corrupt"))
        ):
            return CacheError(
                f"{self.path}: the LLM response cache is corrupted ({msg}); delete it (with any "
                f"{self.path.name}-wal / -shm beside it) to start an empty cache"
            )
        return CacheError(f"{self.path}: cannot {doing} the LLM response cache ({msg}); {_OTHER_CACHE}")

    def _decode(self, body: str) -> dict[str, Any]:
        try:
            d = json.loads(body)
        except (TypeError, ValueError) as e:
            raise self._error(e, "read") from None
        if not isinstance(d, dict):
            raise self._error(ValueError(f"a response is {type(d).__name__}, not an object"), "read")
        return d

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with self._lock:
                row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as e:
            raise self._error(e, "read") from None
        return None if row is None else self._decode(row[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(keys))
        try:
            with self._lock:
                for s in range(0, len(uniq), 500):  # SQLite caps the number of bound parameters
                    chunk = uniq[s : s + 500]
                    q = f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                    for k, r in self._conn.execute(q, chunk).fetchall():
                        out[k] = r
        except sqlite3.Error as e:
            raise self._error(e, "read") from None
        return {k: self._decode(r) for k, r in out.items()}

    def put(self, key: str, kind: str, backend: str, request: str, response: dict[str, Any]) -> None:
        body = json.dumps(response, ensure_ascii=False)
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, kind, backend, request, response, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (key, kind, backend, request, body, time.time()),
                )
        except sqlite3.Error as e:
            raise self._error(e, "write to") from None

    def __len__(self) -> int:
        try:
            with self._lock:
                return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.Error as e:
            raise self._error(e, "read") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _completion(d: dict[str, Any]) -> Completion:
    return Completion(**{**d, "cached": True, "latency_s": 0.0, "cost_usd": 0.0})


def _labels(d: dict[str, Any]) -> LabelScores:
    return LabelScores(**{**d, "cached": True, "latency_s": 0.0, "cost_usd": 0.0})


def _loglik(d: dict[str, Any]) -> LoglikResult:
    scores = [ContinuationScore(**s) for s in d["scores"]]
    return LoglikResult(
        scores=scores, prompt_tokens=d["prompt_tokens"], latency_s=0.0, cost_usd=0.0, cached=True
    )


def _store(obj: Any) -> dict[str, Any]:
    d = dataclasses.asdict(obj)
    d.pop("cached", None)
    return d


class CachedBackend:
    """Wraps any LLMBackend: answers from the cache, sends only the misses, stores each result on arrival.

    `usage` of the wrapper counts real calls (taken from the inner backend) and cache hits.
    """

    def __init__(self, backend: LLMBackend, cache: ResponseCache) -> None:
        self.inner = backend
        self.cache = cache
        self._hits = 0
        self._said_resuming = False
        self._stored: set[str] = set()  # keys this wrapper wrote: a hit on any other comes from an earlier run

    # Delegated lazily: a server backend learns its model and window from the server on first use.
    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def cache_id(self) -> str:
        return self.inner.cache_id

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    @property
    def usage(self) -> Usage:
        u = dataclasses.replace(self.inner.usage, by_kind=dict(self.inner.usage.by_kind))
        u.cached_calls += self._hits
        return u

    def count_tokens(self, prompt: Prompt) -> int:
        return self.inner.count_tokens(prompt)

    def _run(
        self,
        kind: str,
        requests: list[dict[str, Any]],
        decode: Callable[[dict[str, Any]], Any],
        call: Callable[[list[int], OnResult], list[Any]],
        on_result: OnResult | None,
    ) -> list[Any]:
        """Answer hits from the cache; `call(miss_indices, store)` computes the misses, calling `store(j, r)` for
        the j-th miss as soon as it is ready (written to disk at once, then passed on to `on_result`)."""
        keyed = [request_key(kind, self.cache_id, r) for r in requests]
        hits = self.cache.get_many([k for k, _ in keyed])
        out: list[Any] = [None] * len(requests)
        if not self._said_resuming and not set(hits) <= self._stored:  # one line, on any stderr
            print(f"llmrec: resuming: answers already in the LLM response cache {self.cache.path} are reused, "
                  f"only the missing ones are asked", file=sys.stderr, flush=True)
            self._said_resuming = True
        for i, (k, _) in enumerate(keyed):
            if k in hits:
                try:
                    out[i] = decode(hits[k])
                except (TypeError, KeyError, ValueError) as e:  # a row that does not fit the result type
                    raise self.cache._error(e, "read") from None
                self._hits += 1
                if on_result is not None:
                    on_result(i, out[i])
        miss = [i for i, o in enumerate(out) if o is None]
        if miss:

            def store(j: int, result: Any) -> None:
                k, body = keyed[miss[j]]
                self.cache.put(k, kind, self.cache_id, body, _store(result))
                self._stored.add(k)
                if on_result is not None:
                    on_result(miss[j], result)

            for j, r in enumerate(call(miss, store)):
                out[miss[j]] = r
        return out

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        params = params or GenerationParams()
        reqs = [{"prompt": prompt_to_json(p), "params": params.to_dict()} for p in prompts]

        def call(idx: list[int], store: OnResult) -> list[Completion]:
            return self.inner.generate([prompts[i] for i in idx], params, on_result=store)

        return self._run("generate", reqs, _completion, call, on_result)

    def score_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        reqs = [{"prompt": prompt_to_json(p), "labels": list(labels)} for p in prompts]

        def call(idx: list[int], store: OnResult) -> list[LabelScores]:
            return self.inner.score_labels([prompts[i] for i in idx], labels, on_result=store)

        return self._run("score_labels", reqs, _labels, call, on_result)

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        req = {"prompt": prompt_to_json(prefix), "continuations": list(continuations)}

        def call(idx: list[int], store: OnResult) -> list[LoglikResult]:
            r = self.inner.loglik(prefix, continuations)
            store(0, r)
            return [r]

        return self._run("loglik", [req], _loglik, call, None)[0]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
