"""The Ranker contract, its result types, the shared ranker config and permutation bootstrapping.

Contract: `rank(users, candidates) -> list[RankResult]` — for each user (a `UserContext`: a stable key and the
history titles, oldest first) and that user's candidate titles, one score per candidate (higher is better),
aligned with the candidates as given, plus what it cost (`RankStats`). A whole evaluation batch goes in at
once so a ranker can send every prompt of the batch to the backend in one call.
Reference implementation: `llmrec.rankers.verbalizer.VerbalizerRanker` (one forward pass per prompt).

Determinism. Everything random — the bootstrap permutations and, under the `fill` rule, the order of
candidates a generative model never names — comes from `user_rng(seed, key)`, so scores depend only on (seed,
user key, history, candidates, backend answers). With greedy decoding (temperature 0, the default) the same
inputs give the same scores, in any batch composition. Nothing here ever sees the target.

Candidates a generative model never names (`GenerativeConfig.unnamed`; METHODS.md, "Metric hygiene for
generated lists"). A generated list ranks only what it names:
- `bottom` (default, strict): every never-named candidate scores 0, below every named one (C - j > 0), all
  tied — as a constant scorer would be — so the evaluation's pessimistic tie rule puts a never-named target
  below all of them. The NIR paper likewise counts a hit only when the answer names the target; `bottom`
  applies that at every cut-off and to NDCG and MRR.
- `fill`: never-named candidates follow the named ones in one seeded random order per user (no ties). A model
  that names nothing then ranks like `random`: ~10/19 HR@10 on 19 candidates for free. Kept for comparison
  with earlier results; every report names the rule used.

Position-bias bootstrapping (LLMRank, Hou et al. ECIR 2024): `bootstrap` = K orders of the candidates — the
given order, then K-1 seeded permutations — each ranked, then averaged. Generative rankers average positional
scores (C for the first-named candidate down to 1: a Borda count, i.e. a rank average; a candidate named in
none of the K answers keeps 0 under `bottom`, and equal means stay tied: no random tie-break); the verbalizer
averages its label log-probabilities; the pointwise ranker's scores do not depend on the order at all, so it
computes them once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from llmrec.llm.base import Prompt


@dataclass(frozen=True)
class UserContext:
    """What a ranker knows about a user: a stable key (seeds its randomness) and the titles the user
    interacted with, oldest first (already without the held-out item; the ranker shows the last few)."""

    key: int
    history: tuple[str, ...]


@dataclass
class RankStats:
    """Cost and parse counts for one user (sum them over users with `+=`).

    requests: LLM requests made for the user (cache hits included); cached: those answered by the cache.
    prompt_tokens / completion_tokens: tokens of every request as sent and answered (cached ones included, so
    the numbers describe the method, not the state of the cache). outputs: generated texts parsed; parsed: those
    from which at least one candidate was read; named: entries the model wrote; invalid: entries naming no
    candidate; duplicates: entries naming a candidate again. candidates: the user's candidates (generative
    rankers only); unnamed: those named in none of the user's answers (they score by the `unnamed` rule).
    """

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outputs: int = 0
    parsed: int = 0
    named: int = 0
    invalid: int = 0
    duplicates: int = 0
    candidates: int = 0
    unnamed: int = 0

    def __iadd__(self, other: RankStats) -> RankStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RankResult:
    """One user's ranking. scores: (C,) float, higher = better, aligned with the candidates given.
    prompts / outputs: what was sent and the texts that came back (generative rankers), for inspection.
    extras: ranker-specific text, e.g. NIR's `summary` (step 1) and `selected` (step 2)."""

    scores: np.ndarray
    stats: RankStats
    prompts: list[Prompt] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    extras: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Ranker(Protocol):
    name: str

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        """Scores (C_u,) for each user u's candidate titles, higher = better; see the module doc."""
        ...


@dataclass
class RankerConfig:
    """Options every ranker shares (`--set options.KEY=VALUE` on `llmrec evaluate --scorer llm:…`)."""

    history_len: int = 20  # show the last N history titles (NIR's published prompts: 8); 0 = all
    bootstrap: int = 1  # K candidate orders ranked and averaged (position-bias bootstrapping); 1 = the given order
    seed: int = 0  # bootstrap permutations (and, under unnamed=fill, the order of never-named candidates)
    item_kind: str = "item"  # the domain noun in prompts (movie, product); the scorer sets it from the data set
    action: str = "interacted with"  # past-tense verb for an interaction (watched, bought)
    budget_margin: int = 16  # tokens kept free below the model's context window when cutting history

    def __post_init__(self) -> None:
        if self.history_len < 0:
            raise ValueError(f"history_len must be >= 0, got {self.history_len}")
        if self.bootstrap < 1:
            raise ValueError(f"bootstrap must be >= 1, got {self.bootstrap}")

    def recent(self, history: Sequence[str]) -> list[str]:
        h = list(history)
        return h[-self.history_len :] if self.history_len else h


UNNAMED_RULES = ("bottom", "fill")
UnnamedRule = Literal["bottom", "fill"]


@dataclass
class GenerativeConfig(RankerConfig):
    """Options of rankers that generate a list (listwise, nir): how never-named candidates score."""

    # bottom: tied at 0 below every named candidate (strict; the default); fill: a seeded random order after the
    # named ones (a free ~10/19 HR@10 for a model that names nothing). See the module doc.
    unnamed: UnnamedRule = "bottom"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unnamed not in UNNAMED_RULES:
            raise ValueError(f"unnamed must be one of {', '.join(UNNAMED_RULES)}, got {self.unnamed!r}")

    def rest_order(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """Where never-named candidates go: a seeded permutation under `fill`, None (tied at 0) under `bottom`.
        Drawn after the bootstrap orders, so the prompts are the same under both rules."""
        return rng.permutation(n) if self.unnamed == "fill" else None

    def average(self, per_order: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """(n,) mean of the K positional score vectors: plain under `bottom` (ties stay ties); under `fill` with a
        seeded jitter that breaks ties (`average_with_tiebreak`)."""
        if self.unnamed == "fill":
            return average_with_tiebreak(per_order, rng)
        return np.mean(np.stack(per_order), axis=0)  # (K, n) -> (n,)


def check_template(name: str, needs: Sequence[str], fmt: str | None = None) -> None:
    """Raise ValueError unless prompt template `name` exists, declares the variables `needs` and (if given)
    expects the answer format `fmt` — for rankers whose template is an option."""
    from llmrec.errors import LLMRecError
    from llmrec.prompts import load_prompt

    try:
        tpl = load_prompt(name)
    except LLMRecError as e:
        raise ValueError(f"template {name!r}: {e}") from None
    missing = [v for v in needs if v not in tpl.variables]
    if missing:
        raise ValueError(f"template {tpl.id} lacks the variable(s) {', '.join(missing)} this ranker fills")
    got = tpl.expected_output.get("format")
    if fmt is not None and got != fmt:
        raise ValueError(f"template {tpl.id} expects a {got!r} answer; this ranker reads a {fmt!r} answer")


def user_rng(seed: int, key: int) -> np.random.Generator:
    """The one source of randomness for a user: independent of batching and of the other users."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(key) & 0xFFFFFFFF, 0x5EED])


def candidate_orders(rng: np.random.Generator, n: int, k: int) -> list[np.ndarray]:
    """K presentation orders of n candidates: the given order first, then K-1 seeded permutations.
    order[j] = index (into the given candidates) of the j-th candidate shown."""
    return [np.arange(n)] + [rng.permutation(n) for _ in range(k - 1)]


def positional_scores(named: Sequence[int], n: int, rest_order: np.ndarray | None = None) -> np.ndarray:
    """(n,) Borda scores of one generated ranking: the j-th distinct named candidate scores n - j (> 0).
    Candidates never named score 0, all tied (the strict `bottom` rule), or, given `rest_order` (a seeded
    permutation of 0..n-1: the `fill` rule), follow the named ones in that order, so nothing ties."""
    scores = np.zeros(n, dtype=np.float64)
    pos = 0
    seen = set()
    for i in named:
        if i not in seen:
            scores[i] = n - pos
            seen.add(i)
            pos += 1
    for i in rest_order if rest_order is not None else ():
        if int(i) not in seen:
            scores[int(i)] = n - pos
            pos += 1
    return scores


def average_with_tiebreak(per_order: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Mean of K score vectors, ties broken by a seeded jitter smaller than any real difference of a mean of
    integer (Borda) scores (their means differ by at least 1/K)."""
    k = len(per_order)
    mean = np.mean(np.stack(per_order), axis=0)  # (K, n) -> (n,)
    if k == 1:
        return mean
    return mean + rng.random(mean.shape[0]) * (0.5 / k)


def history_budget(backend: Any, max_new_tokens: int, margin: int) -> int | None:
    """Tokens a prompt may take: the backend's window minus the answer and a margin (None: unknown window)."""
    ctx = getattr(backend, "context_length", None)
    if not ctx:
        return None
    return max(1, int(ctx) - int(max_new_tokens) - int(margin))
