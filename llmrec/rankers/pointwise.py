"""Pointwise likelihood ranking: each candidate scored by log p(its title | the user's history).

The prefix is the user's history and a question whose answer is one title (`rank/next_title`, or any template
with a history answered by one title: `template`, e.g. a P5 sequential one after LLM tuning); every candidate
title is a continuation of that same prefix, scored with `backend.loglik(prefix, titles)`, which computes the
prefix once (hf: its key/value cache is reused for every continuation; vLLM: one batched request per chunk,
its prefix cache does the rest). Nothing is generated, so there is nothing to parse.

Length normalisation (`norm`):
- `mean` (default): mean log-probability per title token. A sum favours short titles (every extra token
  costs probability); the mean scores how well the title as a whole fits, whatever its length.
- `sum`: the total log-probability (the probability that the model writes exactly this title).
- `pmi`: the sum minus the same title's log-probability after the prompt with an empty history — how much the
  user's history raises the title over the model's prior for it (one more loglik call per user).

Position bias: the candidates are not in the prompt, so their order cannot matter and bootstrapping is exact
without extra cost — the K "permutations" give identical scores, so they are computed once (documented, and
tested: scores with bootstrap 3 equal those with bootstrap 1). The titles go to the backend sorted and
without duplicates, so the request (and its response-cache entry) is the same for any presentation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from llmrec.llm.base import LLMBackend, LoglikResult
from llmrec.rankers.base import RankerConfig, RankResult, RankStats, UserContext, check_template
from llmrec.rankers.listwise import render_prompt

TEMPLATE = "rank/next_title"
NORMS = ("mean", "sum", "pmi")


@dataclass
class PointwiseConfig(RankerConfig):
    """Pointwise options (plus the shared `RankerConfig` ones)."""

    norm: Literal["mean", "sum", "pmi"] = "mean"  # length normalisation, see the module doc
    max_title_tokens: int = 48  # room kept in the window for the longest continuation
    template: str = TEMPLATE  # any template with a `history` whose answer is one title (`item`)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        check_template(self.template, ("history",), "item")


class PointwiseRanker:
    """Scores candidates by the likelihood of their titles after the history; see the module doc."""

    name = "pointwise"

    def __init__(self, backend: LLMBackend, cfg: PointwiseConfig | None = None) -> None:
        self.backend = backend
        self.cfg = cfg or PointwiseConfig()

    def prefix(self, history: Sequence[str]) -> Any:
        values = {"item_kind": self.cfg.item_kind, "action": self.cfg.action, "history": list(history)}
        return render_prompt(
            self.backend, self.cfg.template, values, self.cfg.max_title_tokens, self.cfg.budget_margin,
            drop_undeclared=True,
        ).messages

    def _scores(self, res: LoglikResult) -> np.ndarray:
        if self.cfg.norm == "mean":
            return np.array([s.mean_logprob for s in res.scores])
        return np.array([s.logprob for s in res.scores])

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        null = self.prefix([]) if self.cfg.norm == "pmi" else None
        out = []
        for user, titles in zip(users, candidates):
            prefix = self.prefix(self.cfg.recent(user.history))
            stats = RankStats()
            if not titles:
                out.append(RankResult(np.zeros(0), stats, [prefix]))
                continue
            # one request per distinct title, in a canonical (sorted) order: the request, and so its cache
            # entry, is the same whatever order or protocol presents the candidates
            uniq = sorted(set(titles))
            back = np.array([uniq.index(t) for t in titles])  # (C,) position of each candidate in `uniq`
            res = self.backend.loglik(prefix, uniq)
            stats += _loglik_stats(res)
            scores = self._scores(res)
            prompts = [prefix]
            if null is not None:
                base = self.backend.loglik(null, uniq)
                stats += _loglik_stats(base)
                scores = scores - self._scores(base)
                prompts.append(null)
            out.append(RankResult(scores[back], stats, prompts))
        return out


def _loglik_stats(res: LoglikResult) -> RankStats:
    return RankStats(
        requests=1,
        cached=int(res.cached),
        prompt_tokens=res.prompt_tokens + sum(s.n_tokens for s in res.scores),
    )
