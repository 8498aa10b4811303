"""The LLM backend contract: request/response types, run usage, and the `LLMBackend` protocol.

Every backend (`hf:` transformers in-process, `openai:` a vLLM or other OpenAI-compatible server, `vllm:` the
in-process vLLM engine) answers three questions about prompts, so rankers never care which one they hold:

- `generate(prompts, params)`      free text (chat or completion), batched / concurrent
- `score_labels(prompts, labels)`  log p(label | prompt) for single-token labels (A, B, C…, Yes/No) read from
                                   the next-token distribution: one forward pass per prompt, no generation
- `loglik(prefix, continuations)`  log p(continuation | prefix) summed over the continuation's tokens, the
                                   shared prefix computed once

Reference implementation: `llmrec.llm.openai_compat.OpenAIBackend` (a vLLM server); `hf_local.HFBackend` is the
embedded default. This module imports only the standard library, so any backend (and a vLLM venv) can use it.

Tokenization convention (the same in every backend, so their log-probs agree token for token): a chat prompt
is rendered with the model's chat template and the assistant generation prompt, then tokenized without adding
special tokens; a plain string prompt is tokenized with the tokenizer's default special tokens; labels and
continuations are tokenized on their own, without special tokens, and appended to the prompt's tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

# A chat message as the OpenAI API and chat templates take it: {"role": "system"|"user"|"assistant", "content": …}.
Message = Mapping[str, str]
# A prompt is either a chat (rendered with the model's chat template) or raw text (sent as is, no template).
Prompt = str | Sequence[Message]

ROLES = ("system", "user", "assistant")


def is_chat(prompt: Prompt) -> bool:
    return not isinstance(prompt, str)


def prompt_to_json(prompt: Prompt) -> Any:
    """A JSON-safe, canonical form of a prompt (cache keys, logs)."""
    if isinstance(prompt, str):
        return prompt
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


@dataclass(frozen=True)
class GenerationParams:
    """How to decode. Defaults are greedy and short, which is what rankers want (answers are parsed, not read).

    choices: structured output — the answer is exactly one of these strings (vLLM `structured_outputs.choice`;
        `hf:` picks the choice with the highest log-likelihood).
    json_schema: structured output — the answer is JSON valid under this schema (servers only).
    seed: used only when sampling (temperature > 0), so sampled runs are reproducible and cacheable.
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    choices: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.choices is not None and len(self.choices) == 0:
            raise ValueError("choices must not be empty")
        if self.choices is not None and self.json_schema is not None:
            raise ValueError("give either choices or json_schema, not both")
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        d["choices"] = None if self.choices is None else list(self.choices)
        if self.greedy:
            d.pop("seed")  # greedy decoding ignores the seed, so it must not split the cache
        return d


@dataclass
class Completion:
    """One generated answer and what it cost. latency_s is wall time of this request (0 when cached)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str = "stop"  # "stop" (end of text / stop string / choice) or "length" (hit max_tokens)
    cost_usd: float = 0.0
    cached: bool = False


@dataclass
class LabelScores:
    """Next-token log-probabilities of single-token labels after one prompt.

    logprobs[c] = log p(labels[c] | prompt) over the full vocabulary, shape (C,); `normalized()` renormalises
    over the labels only (a distribution over the candidates).
    """

    labels: list[str]
    logprobs: list[float]
    prompt_tokens: int
    latency_s: float
    cost_usd: float = 0.0
    cached: bool = False

    def normalized(self) -> list[float]:
        m = max(self.logprobs)
        if m == -math.inf:
            return [-math.log(len(self.logprobs))] * len(self.logprobs)
        z = m + math.log(sum(math.exp(x - m) for x in self.logprobs))
        return [x - z for x in self.logprobs]

    @property
    def best(self) -> str:
        """The most probable label (the first one on ties)."""
        return self.labels[max(range(len(self.labels)), key=lambda i: (self.logprobs[i], -i))]


@dataclass
class ContinuationScore:
    """log p(continuation | prefix): token_logprobs (L,) over the continuation's own tokens, and their sum."""

    text: str
    logprob: float
    token_logprobs: list[float]

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        """Per-token average, for comparing continuations of different lengths."""
        return self.logprob / max(1, self.n_tokens)


@dataclass
class LoglikResult:
    """Scores of several continuations after one shared prefix, in the order given."""

    scores: list[ContinuationScore]
    prompt_tokens: int  # prefix tokens (computed once)
    latency_s: float
    cost_usd: float = 0.0
    cached: bool = False


@dataclass
class Pricing:
    """US dollars per million tokens, for priced APIs (self-hosted servers and hf: cost 0)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass
class Usage:
    """Run totals of one backend. Tokens, latency and cost count real calls only; cache hits count apart."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)  # calls per kind: generate / score_labels / loglik

    def record(
        self,
        kind: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_s: float = 0.0,
        cost_usd: float = 0.0,
        cached: bool = False,
    ) -> None:
        if cached:
            self.cached_calls += 1
            return
        self.calls += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.prompt_tokens += int(prompt_tokens)
        self.completion_tokens += int(completion_tokens)
        self.latency_s += float(latency_s)
        self.cost_usd += float(cost_usd)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OnResult = Callable[[int, Any], None]
"""`on_result(i, result)` is called as soon as result i of a batch is ready (in completion order), so a cache can
store it at once and an interrupted run resumes from there."""


@runtime_checkable
class LLMBackend(Protocol):
    """What rankers use. `name` is the spec (`hf:smollm2-135m`); `cache_id` names backend kind + model for
    response-cache keys; `context_length` is the model's window in tokens; `usage` sums this run's calls."""

    name: str
    cache_id: str
    context_length: int
    usage: Usage

    def generate(
        self,
        prompts: Sequence[Prompt],
        params: GenerationParams | None = None,
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        """One completion per prompt, in order. Raises BackendError when the model cannot answer."""
        ...

    def score_labels(
        self, prompts: Sequence[Prompt], labels: Sequence[str], on_result: OnResult | None = None
    ) -> list[LabelScores]:
        """log p(label | prompt) for every prompt and label; each label must be one token (else BackendError)."""
        ...

    def loglik(self, prefix: Prompt, continuations: Sequence[str]) -> LoglikResult:
        """log p(continuation | prefix) for each continuation; the prefix is computed once."""
        ...

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens the prompt occupies as sent (chat template and generation prompt included)."""
        ...

    def close(self) -> None: ...
